"""Annotation types and annotators: what a definition file declares about annotations.

An annotation is attached to an asset and a time range ``[start_s, end_s]`` and may carry a
region (a ``box`` ``[x0, y0, x1, y1]`` or a ``polygon`` ``[[x, y], ...]`` in 0-1 frame
coordinates), a ``label``, a ``confidence`` (0-1), free ``text``, a ``vector`` (when the type
declares its dimension) and user fields with Arrow types. A type has a version; its
fingerprint covers its fields, so changing them without a version bump is refused at
``apply``, as for features. A definition file declares types and annotators::

    import pyarrow as pa
    from amberlite import annotation_type, annotator

    faces = annotation_type("faces", version=1, fields={"character": pa.string()}, vector_dim=8)

    @annotator(type="faces", entity="shot", version=1)
    def face_boxes(shot):
        return [{"start_s": shot.start_s, "end_s": shot.end_s, "box": [0.1, 0.1, 0.4, 0.6],
                 "label": "face", "confidence": 0.9, "character": "A"}]

``comment`` (text and an optional box) is built in, so people can annotate with no file.

Example:
    >>> t = annotation_type("faces", fields={"character": pa.string()})
    >>> t.key, sorted(t.declaration()["fields"])
    ('faces@1', ['character'])
    >>> check_box([0.1, 0.2, 0.5, 0.9])
    (0.1, 0.2, 0.5, 0.9)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from amberlite.define.fingerprint import canonical_json, code_digest
from amberlite.define.info import check_name
from amberlite.errors import AnnotationError, DefinitionError
from amberlite.media.decode import Decode

# Columns every annotation has (user fields may not reuse these names).
STANDARD = ("label", "confidence", "text", "box", "polygon")
RESERVED = frozenset(
    STANDARD
    + ("id", "type", "asset", "asset_id", "start_s", "end_s", "author", "vector")
    + ("created_at", "updated_at", "deleted", "run", "annotator", "relevance")
)
MAX_VERSION = 2**31 - 1
ENTITIES = ("asset", "shot", "frame")


def _field_type_ok(t: pa.DataType) -> bool:
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return _field_type_ok(t.value_type)
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
    )


@dataclass(frozen=True, eq=False)
class AnnotationType:
    """A declared annotation type: name, version, user fields (name -> Arrow type) and the
    dimension of its ``vector`` (None: no vector)."""

    name: str
    version: int = 1
    fields: Mapping[str, pa.DataType] = field(default_factory=dict)
    vector_dim: int | None = None
    description: str = ""
    builtin: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "annotation type name")
        if (
            not isinstance(self.version, int)
            or isinstance(self.version, bool)
            or not 1 <= self.version <= MAX_VERSION
        ):
            raise DefinitionError(
                f"annotation type {self.name}: version must be a positive int, got {self.version!r}"
            )
        for k, t in self.fields.items():
            check_name(k, "annotation field name")
            if k in RESERVED:
                raise DefinitionError(
                    f"annotation type {self.name}: field {k!r} is a standard column"
                )
            if not isinstance(t, pa.DataType) or not _field_type_ok(t):
                raise DefinitionError(
                    f"annotation type {self.name}: field {k!r} needs an Arrow type of ints, "
                    f"floats, bools, strings or lists of them, not {t!r}"
                )
        if self.vector_dim is not None and (
            not isinstance(self.vector_dim, int) or not 1 <= self.vector_dim <= 65536
        ):
            raise DefinitionError(
                f"annotation type {self.name}: vector_dim must be an int in 1..65536"
            )

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def declaration(self) -> dict[str, Any]:
        return {
            "fields": {k: str(t) for k, t in self.fields.items()},
            "vector_dim": self.vector_dim,
        }

    def fingerprint(self) -> str:
        text = canonical_json({"name": self.name, "declaration": self.declaration()})
        return hashlib.sha256(text.encode()).hexdigest()

    def columns(self) -> list[str]:
        """Every column of this type's annotations as queries and exports show them."""
        cols = ["id", "type", "asset", "asset_id", "start_s", "end_s", *STANDARD]
        if self.vector_dim:
            cols.append("vector")
        return [*cols, *self.fields, "author", "created_at", "updated_at"]

    def storage_schema(self) -> pa.Schema:
        """The Parquet schema of a model run's annotations of this type."""
        cols = [
            ("id", pa.string()),
            ("asset_id", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("box", pa.list_(pa.float64(), 4)),
            ("polygon", pa.list_(pa.list_(pa.float64(), 2))),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("text", pa.string()),
        ]
        if self.vector_dim:
            cols.append(("vector", pa.list_(pa.float32(), self.vector_dim)))
        cols += list(self.fields.items())
        return pa.schema(cols)

    @classmethod
    def from_declaration(cls, name: str, version: int, declaration: Mapping[str, Any]):
        """The type as the catalog records it (Arrow types read back from their text)."""
        fields = {k: arrow_type_of(t) for k, t in declaration.get("fields", {}).items()}
        return cls(name, version, fields, declaration.get("vector_dim"))


def arrow_type_of(text: str) -> pa.DataType:
    """An Arrow type from its text form (``int64``, ``list<item: string>``...)."""
    simple = {
        "bool": pa.bool_(),
        "string": pa.string(),
        "double": pa.float64(),
        "float": pa.float32(),
        "halffloat": pa.float16(),
        **{f"int{n}": getattr(pa, f"int{n}")() for n in (8, 16, 32, 64)},
        **{f"uint{n}": getattr(pa, f"uint{n}")() for n in (8, 16, 32, 64)},
    }
    t = text.strip()
    if t in simple:
        return simple[t]
    if t.startswith("list<") and t.endswith(">"):
        inner = t[5:-1].split(":", 1)[-1].strip()
        return pa.list_(arrow_type_of(inner))
    raise DefinitionError(f"unsupported annotation field type {text!r}")


def annotation_type(
    name: str,
    *,
    version: int = 1,
    fields: Mapping[str, pa.DataType] | None = None,
    vector_dim: int | None = None,
    description: str = "",
) -> AnnotationType:
    """Declare an annotation type (see the module docstring)."""
    return AnnotationType(name, version, dict(fields or {}), vector_dim, description)


COMMENT = AnnotationType(
    "comment", 1, {}, None, "a person's note on a time range, with an optional box", True
)
SUBTITLES = AnnotationType(
    "subtitles",
    1,
    {"stream": pa.string(), "language": pa.string()},
    None,
    "subtitle cues: text with its time range (container streams and sidecar files)",
    True,
)
TRANSITIONS = AnnotationType(
    "transitions",
    1,
    {"start_frame": pa.int64(), "end_frame": pa.int64()},
    None,
    "shot boundaries: label cut | dissolve | fade, with their spans",
    True,
)
SUBJECTS = AnnotationType(
    "subjects", 1, {}, None, "the framing feature's foreground as a box per shot", True
)
BUILTIN_TYPES = (COMMENT, SUBTITLES, TRANSITIONS, SUBJECTS)


@dataclass(frozen=True, eq=False)
class AnnotatorSpec:
    """A declared annotator: a versioned function over one entity type (asset, shot or
    frame) returning any number of annotations (dicts) of one annotation type."""

    name: str
    fn: Callable[..., Any]
    type: str
    entity: str
    version: int
    decode: Decode = field(default_factory=Decode)
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    module: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "annotator name")
        check_name(self.type, "annotation type name")
        if self.entity not in ENTITIES:
            raise DefinitionError(f"annotator {self.name}: entity must be one of {ENTITIES}")
        if not isinstance(self.version, int) or not 1 <= self.version <= MAX_VERSION:
            raise DefinitionError(f"annotator {self.name}: version must be a positive int")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def fingerprint(self) -> str:
        decl = {
            "type": self.type,
            "entity": self.entity,
            "decode": self.decode.key(),
            "params": dict(self.params),
            "code": code_digest(self.fn),
        }
        return hashlib.sha256(canonical_json(decl).encode()).hexdigest()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def annotator(
    *,
    type: str,  # noqa: A002 - the annotation type it writes
    entity: str = "asset",
    version: int = 1,
    decode: Decode | None = None,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], AnnotatorSpec]:
    """Declare an annotator (see the module docstring). The function gets one entity view and
    returns an iterable of annotation dicts (``start_s``, ``end_s`` within the entity,
    optional ``box``/``polygon``/``label``/``confidence``/``text``/``vector``/fields)."""

    def wrap(fn: Callable[..., Any]) -> AnnotatorSpec:
        return AnnotatorSpec(
            name=name or fn.__name__,
            fn=fn,
            type=type,
            entity=entity,
            version=version,
            decode=decode or Decode(),
            params=dict(params or {}),
            description=(fn.__doc__ or "").strip().split("\n")[0],
            module=fn.__module__,
        )

    return wrap


# -- validation: one annotation against its type ---------------------------------------------
def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AnnotationError(f"{what} must be a finite number, not {v!r}")
    return float(v)


def check_box(box: Any) -> tuple[float, float, float, float] | None:
    """A box ``[x0, y0, x1, y1]`` in 0-1 frame coordinates with x0 <= x1, y0 <= y1."""
    if box is None:
        return None
    if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4:
        raise AnnotationError(f"box must be [x0, y0, x1, y1], not {box!r}")
    x0, y0, x1, y1 = (_num(v, "a box coordinate") for v in box)
    if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
        raise AnnotationError(
            f"box {list(box)} is outside the frame: coordinates are 0-1 with x0 <= x1, y0 <= y1"
        )
    return (x0, y0, x1, y1)


def check_polygon(poly: Any) -> list[tuple[float, float]] | None:
    if poly is None:
        return None
    if not isinstance(poly, Sequence) or isinstance(poly, str) or len(poly) < 3:
        raise AnnotationError("polygon must be a list of at least 3 [x, y] points")
    out = []
    for p in poly:
        if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 2:
            raise AnnotationError(f"polygon point must be [x, y], not {p!r}")
        x, y = _num(p[0], "a polygon coordinate"), _num(p[1], "a polygon coordinate")
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise AnnotationError(f"polygon point {[x, y]} is outside the frame (0-1)")
        out.append((x, y))
    return out


def check_field(t: pa.DataType, value: Any, what: str) -> Any:
    """``value`` when it has Arrow type ``t`` exactly (no silent conversion), else an error."""
    if value is None:
        return None
    ok = True
    if pa.types.is_boolean(t):
        ok = isinstance(value, bool)
    elif pa.types.is_integer(t):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif pa.types.is_floating(t):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif pa.types.is_string(t):
        ok = isinstance(value, str)
    elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        ok = isinstance(value, (list, tuple))
        if ok:
            value = [check_field(t.value_type, v, what) for v in value]
    if ok:
        try:
            pa.array([value], type=t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            ok = False
    if not ok:
        raise AnnotationError(f"{what} must be of type {t}, not {value!r}")
    return value


def check_annotation(
    record: Mapping[str, Any], atype: AnnotationType, duration_s: float | None
) -> dict[str, Any]:
    """The standard and user fields of ``record`` checked against ``atype`` and the asset's
    duration (``start_s``/``end_s`` required); raises :class:`AnnotationError`."""
    start = _num(record.get("start_s"), "start_s")
    end = _num(record.get("end_s"), "end_s")
    if start < 0 or end < start:
        raise AnnotationError(f"time range [{start}, {end}] must satisfy 0 <= start_s <= end_s")
    if duration_s is not None and end > duration_s + 1e-6:
        raise AnnotationError(
            f"time range [{start}, {end}] is outside the asset (it lasts {duration_s:.3f} s)"
        )
    out: dict[str, Any] = {"start_s": start, "end_s": end}
    out["box"] = check_box(record.get("box"))
    out["polygon"] = check_polygon(record.get("polygon"))
    for k in ("label", "text"):
        v = record.get(k)
        if v is not None and not isinstance(v, str):
            raise AnnotationError(f"{k} must be text, not {v!r}")
        out[k] = v
    c = record.get("confidence")
    if c is not None:
        c = _num(c, "confidence")
        if not 0.0 <= c <= 1.0:
            raise AnnotationError(f"confidence must be within 0-1, not {c}")
    out["confidence"] = c
    vec = record.get("vector")
    if vec is not None:
        if not atype.vector_dim:
            raise AnnotationError(f"annotation type {atype.name} declares no vector")
        vals = list(vec) if not isinstance(vec, (str, bytes)) else None
        if vals is None or len(vals) != atype.vector_dim:
            raise AnnotationError(f"vector must hold {atype.vector_dim} numbers")
        out["vector"] = [_num(float(v), "a vector element") for v in vals]
    elif atype.vector_dim:
        out["vector"] = None
    for k, t in atype.fields.items():
        out[k] = check_field(t, record.get(k), f"field {k!r} of {atype.name}")
    return out


def unknown_keys(record: Mapping[str, Any], atype: AnnotationType, allowed: set[str]) -> list[str]:
    """Keys of ``record`` that are neither standard, allowed, nor fields of ``atype``."""
    known = set(RESERVED) | set(atype.fields) | allowed
    return sorted(k for k in record if k not in known)

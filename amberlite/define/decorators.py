"""The ``@feature`` and ``@segmenter`` decorators.

A definition file is a Python module whose top-level functions are decorated::

    import pyarrow as pa
    from amberlite import Decode, feature

    @feature(entity="asset", version=1, output=pa.list_(pa.float32(), 3),
             decode=Decode(size=(64, 36), fps=2))
    def mean_color(asset):
        return asset.frames().mean(axis=(0, 1, 2)) / 255.0

The decorator returns a :class:`FeatureSpec`; loading the module collects them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from amberlite.define.fingerprint import code_digest, params_key
from amberlite.define.info import check_name, resolve_params
from amberlite.define.model import Model
from amberlite.errors import DefinitionError, ResolveError
from amberlite.media.decode import Decode

SPAN_TYPE = pa.list_(pa.struct([("start_frame", pa.int64()), ("end_frame", pa.int64())]))
PARALLEL = ("thread", "process", "serial")
MAX_VERSION = 2**31 - 1  # the catalog stores versions as INTEGER


@dataclass(frozen=True)
class InputRef:
    """An input a feature consumes: another feature, optionally pinned and parametrized."""

    name: str
    version: int | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, ref: str | InputRef) -> InputRef:
        if isinstance(ref, InputRef):
            return ref
        name, _, version = ref.partition("@")
        check_name(name, "input feature name")
        return cls(name, int(version) if version else None)


@dataclass(frozen=True, eq=False)
class FeatureSpec:
    """A declared feature: a versioned function over one entity type.

    ``batch`` is None (call once per entity), an int (call with lists of that many entities)
    or ``"asset"`` (call once per asset with all of its entities). ``produces`` names the
    entity type a segmenter creates; its values are frame spans.
    """

    name: str
    fn: Callable[..., Any]
    entity: str
    version: int
    output: pa.DataType
    inputs: tuple[InputRef, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    decode: Decode = field(default_factory=Decode)
    resources: Mapping[str, float] = field(default_factory=dict)
    batch: int | str | None = None
    parallel: str = "thread"
    produces: str | None = None
    on_ingest: bool = False
    nullable: bool = False
    description: str = ""
    module: str = ""
    models: tuple[Model, ...] = ()
    alternative: bool = False  # a segmenter chosen by name only, never its type's default
    # check(**params) raises ValueError or TypeError for values that make no sense: a
    # request giving such parameters is refused before anything is computed (resolve_params)
    check: Callable[..., None] | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "feature name")
        check_name(self.entity, "entity type")
        if self.produces is not None:
            check_name(self.produces, "entity type")
        if (
            not isinstance(self.version, int)
            or isinstance(self.version, bool)
            or not 1 <= self.version <= MAX_VERSION
        ):
            raise DefinitionError(
                f"{self.name}: version must be a positive int up to {MAX_VERSION}, "
                f"got {self.version!r}"
            )
        if not isinstance(self.output, pa.DataType):
            raise DefinitionError(f"{self.name}: output must be a pyarrow DataType")
        if self.parallel not in PARALLEL:
            raise DefinitionError(f"{self.name}: parallel must be one of {PARALLEL}")
        if not (
            self.batch is None
            or self.batch == "asset"
            or (isinstance(self.batch, int) and self.batch > 0)
        ):
            raise DefinitionError(f"{self.name}: batch must be None, a positive int or 'asset'")
        for key in self.params:
            check_name(key, "parameter name")
        names = [m.name for m in self.models]
        if not all(isinstance(m, Model) for m in self.models):
            raise DefinitionError(f"{self.name}: models must be declared with amberlite.model()")
        if len(set(names)) != len(names):
            raise DefinitionError(f"{self.name}: two models named alike in {names}")
        clash = set(names) & {*self.params, *(i.name for i in self.inputs)}
        if clash:
            raise DefinitionError(f"{self.name}: {sorted(clash)} is both a model and a parameter")
        if self.check is not None:
            if not callable(self.check):
                raise DefinitionError(f"{self.name}: check must be a function of the parameters")
            try:
                self.check(**self.params)
            except (TypeError, ValueError) as exc:
                raise DefinitionError(
                    f"{self.name}: its default parameters fail its check: {exc}"
                ) from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def code_digest(self) -> str:
        return code_digest(self.fn)

    def declaration(self) -> dict[str, Any]:
        """Everything besides code that changes what the feature computes."""
        return {
            "entity": self.entity,
            "output": str(self.output),
            "inputs": [(i.name, i.version, list(i.params)) for i in self.inputs],
            "params": dict(self.params),
            "decode": self.decode.key(),
            "produces": self.produces,
            "batch": self.batch,
            # only when set, so that fingerprints recorded before the flag existed still match
            **({"nullable": True} if self.nullable else {}),
            # a model's weights are part of its features' identity (amberlite.define.model)
            **({"models": {m.name: m.declaration() for m in self.models}} if self.models else {}),
            **({"alternative": True} if self.alternative else {}),
        }

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Merge given parameters over the declared defaults; unknown names, and values the
        feature's ``check`` refuses, are an error."""
        merged = resolve_params(self.name, self.params, given)
        if given and self.check is not None:
            try:
                self.check(**merged)
            except (TypeError, ValueError) as exc:
                raise ResolveError(f"{self.name}: {exc}") from None
        return merged

    def params_key(self, given: Mapping[str, Any] | None = None) -> str:
        return params_key(self.resolve_params(given))


def feature(
    *,
    entity: str,
    version: int = 1,
    output: pa.DataType,
    inputs: Sequence[str | InputRef] = (),
    params: Mapping[str, Any] | None = None,
    decode: Decode | None = None,
    resources: Mapping[str, float] | None = None,
    batch: int | str | None = None,
    parallel: str = "thread",
    on_ingest: bool = False,
    nullable: bool = False,
    name: str | None = None,
    models: Sequence[Model] = (),
    check: Callable[..., None] | None = None,
) -> Callable[[Callable[..., Any]], FeatureSpec]:
    """Declare a feature. See the module docstring for an example.

    A function that returns None fails for that entity ("returned None") unless the feature is
    declared ``nullable=True``, which stores a NULL (read as null, not as a failure).
    ``models`` (see :func:`amberlite.model`) are passed loaded, as keyword arguments of their
    names; their weights' hashes are part of the feature's identity. ``check``, called with
    the parameters as keyword arguments, raises ValueError for values that make no sense: a
    request giving them is refused with that message (an ``error:`` line), nothing computed."""

    def wrap(fn: Callable[..., Any]) -> FeatureSpec:
        return FeatureSpec(
            name=name or fn.__name__,
            fn=fn,
            entity=entity,
            version=version,
            output=output,
            inputs=tuple(InputRef.parse(i) for i in inputs),
            params=dict(params or {}),
            decode=decode or Decode(),
            resources=dict(resources or {}),
            batch=batch,
            parallel=parallel,
            on_ingest=on_ingest,
            nullable=nullable,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            module=fn.__module__,
            models=tuple(models),
            check=check,
        )

    return wrap


def segmenter(
    *,
    produces: str,
    over: str = "asset",
    version: int = 1,
    params: Mapping[str, Any] | None = None,
    decode: Decode | None = None,
    parallel: str = "thread",
    on_ingest: bool = False,
    name: str | None = None,
    models: Sequence[Model] = (),
    resources: Mapping[str, float] | None = None,
    alternative: bool = False,
    check: Callable[..., None] | None = None,
) -> Callable[[Callable[..., Any]], FeatureSpec]:
    """Declare a segmenter: a feature over assets whose value is a list of frame spans.

    The function returns ``[(start_frame, end_frame), ...]`` (end exclusive); committing the
    value creates one entity of type ``produces`` per span. Several segmenters may produce
    one type: the type's default is its newest segmenter not declared ``alternative``; a
    store setting or a query (``FROM shots USING name``) chooses another. ``check`` refuses
    parameters that make no sense, as for :func:`feature`.
    """

    def wrap(fn: Callable[..., Any]) -> FeatureSpec:
        return FeatureSpec(
            name=name or fn.__name__,
            fn=fn,
            entity=over,
            version=version,
            output=SPAN_TYPE,
            params=dict(params or {}),
            decode=decode or Decode(),
            parallel=parallel,
            produces=produces,
            on_ingest=on_ingest,
            description=(fn.__doc__ or "").strip().split("\n")[0],
            module=fn.__module__,
            models=tuple(models),
            resources=dict(resources or {}),
            alternative=alternative,
            check=check,
        )

    return wrap

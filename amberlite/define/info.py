"""What planning and reading need to know of a declared feature, without its code.

A :class:`FeatureInfo` is a value: name, version, entity type, output type (as Arrow's text),
declared parameters and the entity type it produces (segmenters). It comes from a
:class:`~amberlite.define.decorators.FeatureSpec` (``FeatureInfo.of(spec)``) or from the
catalog's ``features`` table (``FeatureInfo.from_row``), so a query over stored values plans
and reads without importing the definition files (or pyarrow). Computing needs the spec.

Example:
    >>> info = FeatureInfo("scaled", 1, "shot", "double", {"scale": 1.0})
    >>> info.resolve_params({"scale": 2}), info.kind, info.key
    ({'scale': 2}, 'num', 'scaled@1')
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amberlite.core.types import aql_kind, duck_array_type, float_vector_dim
from amberlite.define.fingerprint import params_key
from amberlite.errors import DefinitionError, ResolveError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_name(name: str, what: str = "name") -> str:
    """Names reach file paths and SQL identifiers: letters, digits and underscores only."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise DefinitionError(
            f"invalid {what} {name!r}: use letters, digits and '_' (not starting with a digit)"
        )
    return name


def resolve_params(
    name: str, declared: Mapping[str, Any], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Merge given parameters over the declared defaults; unknown names are an error."""
    merged = dict(declared)
    for k, v in (given or {}).items():
        if k not in merged:
            raise ResolveError(f"{name} has no parameter {k!r}", name=k, candidates=merged)
        merged[k] = v
    return merged


@dataclass(frozen=True)
class FeatureInfo:
    """A declared feature as the catalog records it (see the module docstring)."""

    name: str
    version: int
    entity: str
    output_type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    produces: str | None = None
    description: str = ""
    alternative: bool = False  # a segmenter never chosen by default (see @segmenter)

    @classmethod
    def of(cls, spec: Any) -> FeatureInfo:
        return cls(
            spec.name,
            spec.version,
            spec.entity,
            str(spec.output),
            dict(spec.params),
            spec.produces,
            spec.description,
            bool(getattr(spec, "alternative", False)),
        )

    @classmethod
    def from_row(
        cls,
        name: str,
        version: int,
        entity: str,
        produces: str | None,
        output_type: str,
        declaration: str,
        description: str | None,
    ) -> FeatureInfo:
        decl = json.loads(declaration or "{}")
        params = decl.get("params") or {}
        alternative = bool(decl.get("alternative"))
        return cls(
            name, version, entity, output_type, params, produces, description or "", alternative
        )

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def kind(self) -> str:
        """The AQL type of the values: num, str, bool, vec or other."""
        return aql_kind(self.output_type)

    @property
    def dim(self) -> int | None:
        """The dimension of a fixed-size float vector feature, else None."""
        return float_vector_dim(self.output_type)

    @property
    def duck_cast(self) -> str | None:
        """The DuckDB ARRAY type its Parquet values are cast to when read (``FLOAT[512]``)."""
        return duck_array_type(self.output_type)

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        return resolve_params(self.name, self.params, given)

    def params_key(self, given: Mapping[str, Any] | None = None) -> str:
        return params_key(self.resolve_params(given))


def as_info(spec: Any) -> FeatureInfo:
    """A FeatureInfo of a FeatureSpec (or the info itself)."""
    return spec if isinstance(spec, FeatureInfo) else FeatureInfo.of(spec)


@dataclass(frozen=True)
class Segmentation:
    """Which segmenter, with which parameters, makes an entity set of a span type.

    An entity set's identity is its segmentation: the catalog records each entity with its
    ``label`` (``producer``: ``<segmenter>@<version>/<params_key>``), and entities of two
    segmentations never mix. Their ids differ too (``tag``): the default segmenter of a type
    with its declared parameters makes ``<asset_id>/<start>-<end>``; any other segmentation
    appends ``~<segmenter>@<version>`` (and ``.<params_key[:8]>`` with other parameters), so
    that no feature value, failure or claim is shared between them.

    Example:
        >>> shots = FeatureInfo("transnetv2", 1, "asset", "x", {"threshold": 0.5}, "shot",
        ...                     alternative=True)
        >>> Segmentation(shots, {"threshold": 0.5}).tag
        'transnetv2@1'
        >>> Segmentation(shots, {"threshold": 0.3}).tag
        'transnetv2@1.e34d1fd4'
    """

    spec: Any  # the segmenter: a FeatureSpec or a FeatureInfo
    params: Mapping[str, Any]  # resolved: every declared parameter

    @classmethod
    def of(cls, spec: Any, given: Mapping[str, Any] | None = None) -> Segmentation:
        return cls(spec, spec.resolve_params(given))

    @property
    def label(self) -> str:
        return f"{self.spec.key}/{params_key(self.params)}"

    @property
    def default(self) -> bool:
        """Made by a non-alternative segmenter with its declared parameters."""
        return not getattr(self.spec, "alternative", False) and dict(self.params) == dict(
            self.spec.params
        )

    @property
    def tag(self) -> str:
        if self.default:
            return ""
        tag = self.spec.key
        if dict(self.params) != dict(self.spec.params):
            tag += "." + params_key(self.params)[:8]
        return tag

    def describe(self) -> str:
        """``transnetv2@1`` or ``transnetv2@1(threshold=0.3)`` (parameters that differ)."""
        changed = {k: v for k, v in self.params.items() if self.spec.params.get(k) != v}
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))
        return self.spec.key + (f"({args})" if args else "")

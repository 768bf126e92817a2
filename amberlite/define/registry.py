"""The features a store knows: built-ins plus every applied definition file.

Fingerprints chain through inputs, so a change in an input's code changes its consumers'
fingerprints too.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING

from amberlite.define.fingerprint import fingerprint
from amberlite.errors import DefinitionError, ResolveError

if TYPE_CHECKING:
    from amberlite.define.decorators import FeatureSpec, InputRef


# The columns every AQL entity set has (amberlite/plan/build.py: BASE_COLUMNS, EXTRA_COLUMNS)
# and NEAREST's score: a feature of one of these names would be hidden by the column.
ENTITY_COLUMNS = frozenset(
    "id ref asset asset_id index start_frame end_frame start_s end_s n t alias path width "
    "height frame_count duration_s fps score".split()
)
BASE_ENTITY_TYPES = ("asset", "frame")


class Registry:
    """FeatureSpecs by (name, version), with input resolution and fingerprints. (A registry
    of code-free :class:`~amberlite.define.info.FeatureInfo` values answers the same look-ups:
    the planner's schema is one.)"""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, int], FeatureSpec] = {}

    def add(self, spec: FeatureSpec) -> None:
        self._specs[(spec.name, spec.version)] = spec

    def names(self) -> list[str]:
        return sorted({n for n, _ in self._specs})

    def versions(self, name: str) -> list[int]:
        return sorted(v for n, v in self._specs if n == name)

    def all(self) -> list[FeatureSpec]:
        return [self._specs[k] for k in sorted(self._specs)]

    def get(self, name: str, version: int | None = None) -> FeatureSpec:
        """The spec for name@version; unpinned means the newest applied version."""
        versions = self.versions(name)
        if not versions:
            raise ResolveError(f"unknown feature {name!r}", name=name, candidates=self.names())
        if version is None:
            version = versions[-1]
        if version not in versions:
            raise ResolveError(
                f"feature {name!r} has no version {version} (versions: "
                f"{', '.join(map(str, versions))})"
            )
        return self._specs[(name, version)]

    def producer_of(self, entity_type: str) -> FeatureSpec | None:
        """The default segmenter of ``entity_type``: the newest one that produces it and is
        not declared ``alternative`` (an alternative one when there is no other)."""
        found = self.segmenters_of(entity_type)
        if not found:
            return None
        return max(found, key=lambda s: (not getattr(s, "alternative", False), s.version, s.name))

    def segmenters_of(self, entity_type: str) -> list[FeatureSpec]:
        """Every declared segmenter (each version) that produces ``entity_type``."""
        return [s for s in self._specs.values() if s.produces == entity_type]

    def segmenter(self, entity_type: str, name: str, version: int | None = None) -> FeatureSpec:
        """The segmenter ``name`` (newest version unless given), which must produce
        ``entity_type``."""
        spec = self.get(name, version)
        if spec.produces != entity_type:
            raise ResolveError(
                f"{spec.key} does not produce {entity_type!r} entities",
                name=name,
                candidates=sorted({s.name for s in self.segmenters_of(entity_type)}),
            )
        return spec

    def check_applicable(self, spec: FeatureSpec) -> None:
        """Refuse at apply what would only fail at materialize or be hidden in AQL: an entity
        type nothing produces, a name an entity column takes, a function that cannot take
        one entity and its inputs and parameters as keyword arguments."""
        if spec.name in ENTITY_COLUMNS:
            raise DefinitionError(
                f"{spec.key}: {spec.name!r} is the name of an entity column in AQL, which would "
                "hide the feature: choose another name"
            )
        if spec.entity not in BASE_ENTITY_TYPES and self.producer_of(spec.entity) is None:
            known = sorted(
                {*BASE_ENTITY_TYPES, *(s.produces for s in self._specs.values())} - {None}
            )
            raise DefinitionError(
                f"{spec.key}: unknown entity type {spec.entity!r} (known: {', '.join(known)}; "
                "a new span type needs an @segmenter that produces it)"
            )
        try:
            sig = inspect.signature(spec.fn)
        except (TypeError, ValueError):
            return  # a callable without a signature: nothing to check
        names = (
            [ref.name for ref in spec.inputs]
            + list(spec.params)
            + [m.name for m in getattr(spec, "models", ())]
        )
        try:
            sig.bind(object(), **dict.fromkeys(names))
        except TypeError as e:
            wanted = ", ".join(["entity", *(f"{n}=..." for n in names)])
            raise DefinitionError(
                f"{spec.key}: the function {getattr(spec.fn, '__name__', spec.name)}{sig} "
                f"cannot be called as f({wanted}): {e}"
            ) from None

    def resolve_input(self, ref: InputRef) -> FeatureSpec:
        return self.get(ref.name, ref.version)

    def fingerprint(self, spec: FeatureSpec, _seen: Iterable[str] = ()) -> str:
        seen = set(_seen)
        if spec.key in seen:
            raise DefinitionError(f"{spec.key}: inputs form a cycle")
        seen.add(spec.key)
        inputs = []
        for ref in spec.inputs:
            try:
                dep = self.resolve_input(ref)
            except ResolveError as e:
                raise DefinitionError(f"{spec.key}: input {ref.name!r}: {e}") from e
            if dep.entity not in (spec.entity, "asset"):
                raise DefinitionError(
                    f"{spec.key}: input {dep.key} is over {dep.entity!r}; an input must be over "
                    f"the same entity type ({spec.entity!r}) or over 'asset'"
                )
            inputs.append(self.fingerprint(dep, seen))
        return fingerprint(spec.code_digest(), spec.declaration(), inputs)

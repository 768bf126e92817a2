"""The schema a plan is built against: a value, not a store.

:class:`PlanSchema` holds what name resolution needs: the declared features (a
:class:`~amberlite.define.registry.Registry`), asset aliases and ids, and the entity types the
catalog knows. The query executor makes one from an open store
(:func:`amberlite.exec.scope.plan_schema`); a test makes one by hand, with no store on disk.

Example:
    >>> from amberlite.define.registry import Registry
    >>> schema = PlanSchema(Registry(), {"film1": "a" * 32})
    >>> schema.resolve_assets(["film1"]) == ("a" * 32,)
    True
    >>> schema.entity_type_of("frames")
    'frame'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amberlite.core.refs import resolve_asset_refs
from amberlite.define.info import FeatureInfo, as_info
from amberlite.define.registry import Registry
from amberlite.errors import ResolveError

BUILTIN_TYPES = ("asset", "frame", "shot")


@dataclass(frozen=True)
class PlanSchema:
    """Names, types and versions a plan resolves against (see the module docstring)."""

    registry: Registry  # of FeatureInfo (from the catalog) or FeatureSpec values
    assets: Mapping[str, str] = field(default_factory=dict)  # alias -> asset id
    asset_ids: frozenset[str] | None = None  # None: the values of ``assets``
    catalog_types: tuple[str, ...] = BUILTIN_TYPES
    # annotation type -> {user column: kind}, or a function returning it (read on first use:
    # a query that names no annotations never loads them)
    annotation_types: Mapping[str, Mapping[str, str]] | Callable[[], Any] | None = None

    def annotation_columns(self, name: str) -> Mapping[str, str]:
        """The user columns (``vector`` included) of annotation type ``name``."""
        types = self.annotation_types
        if callable(types):
            types = types()
        types = types or {}
        if name not in types:
            raise ResolveError(
                f"unknown annotation type {name!r}", name=name, candidates=sorted(types)
            )
        return types[name]

    @property
    def ids(self) -> frozenset[str]:
        return self.asset_ids if self.asset_ids is not None else frozenset(self.assets.values())

    @property
    def entity_types(self) -> list[str]:
        types = set(self.catalog_types)
        types |= {s.produces for s in self.registry.all() if s.produces}
        return sorted(types)

    def resolve_assets(self, refs: Sequence[str]) -> tuple[str, ...]:
        return resolve_asset_refs(refs, self.assets, self.ids)

    def entity_type_of(self, name: str) -> str:
        """Entity type named by an entity-set name: plural or singular, built in or declared."""
        types = self.entity_types
        for t in types:
            if name in (t, t + "s"):
                return t
        raise ResolveError(
            f"unknown entity set {name!r}", name=name, candidates=[t + "s" for t in types]
        )

    def feature(self, name: str, version: int | None = None) -> FeatureInfo:
        """A declared feature (newest version unless given), as a code-free value."""
        return as_info(self.registry.get(name, version))

    def producer_of(self, entity_type: str) -> FeatureInfo | None:
        prod = self.registry.producer_of(entity_type)
        return None if prod is None else as_info(prod)

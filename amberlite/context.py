"""What the layers below the :class:`~amberlite.store.Store` façade need of a store.

A :class:`StoreContext` is a small value: the store's folder, its catalog, its memo store,
the registry of declared features, the media cache, and (set by the Store, which builds them
over this context) its replicas and its resolver. The
resolver, the executors' callers, the replicas, the search and the query executor take one
instead of the whole Store, so no lower layer calls back up into the façade.

It also holds the one asset-reference resolver with its names cache (aliases, ids, entity
types), read in one catalog transaction and reused until the catalog file changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amberlite.catalog import Catalog
from amberlite.core.refs import resolve_asset_refs
from amberlite.define.info import FeatureInfo, Segmentation
from amberlite.define.registry import Registry
from amberlite.errors import ResolveError
from amberlite.memo.store import MemoStore

if TYPE_CHECKING:
    from amberlite.core.entities import AssetRecord, AssetView
    from amberlite.define.decorators import FeatureSpec
    from amberlite.media.decode import Decode


@dataclass(frozen=True)
class CatalogNames:
    """The catalog names planning needs: asset aliases and ids, entity types."""

    by_alias: Mapping[str, str]
    ids: frozenset[str]
    entity_types: tuple[str, ...]
    alias_of: Mapping[str, str]
    # the store's setting per span type: (segmenter name, parameters) (Store.set_segmenter)
    segmenters: Mapping[str, tuple[str, Mapping[str, Any]]] = None  # type: ignore[assignment]


class StoreContext:
    """The parts of one open store (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        memo: MemoStore,
        load_registry: Callable[[], Registry],
        media_cache: Path,
        load_replicas: Callable[[], Any] | None = None,
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.memo = memo
        self.media_cache = media_cache
        self._load_registry = load_registry
        self._registry: Registry | None = None
        self._schema: tuple[tuple, Registry] | None = None
        self._schema_of: tuple[Registry, Registry] | None = None
        self._load_replicas = load_replicas
        self._replicas: Any = None  # the ReplicaManager (amberlite.connectors), opened lazily
        self.resolver: Any = None  # the Resolver (amberlite.run.resolve), set by the Store
        self._names: tuple[tuple, CatalogNames] | None = None

    @property
    def replicas(self) -> Any:
        """The store's ReplicaManager (:mod:`amberlite.connectors.manager`), opened on first
        use: a search, a commit, ``replicate`` commands."""
        if self._replicas is None and self._load_replicas is not None:
            self._replicas = self._load_replicas()
        return self._replicas

    @replicas.setter
    def replicas(self, manager: Any) -> None:
        self._replicas = manager

    # -- features -----------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """The declared features with their code (built-ins and applied definition files),
        loaded on first use: computing needs it, planning and reading do not."""
        if self._registry is None:
            self._registry = self._load_registry()
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self._registry = registry

    def schema(self) -> Registry:
        """The declared features as the catalog records them (:class:`FeatureInfo` values,
        no code), read in one transaction and reused until the catalog changes. When the
        registry is loaded, its code-backed features are the ones that count, plus older
        versions whose code is gone (read once per registry: not on every commit)."""
        if self._registry is not None:
            if self._schema_of is None or self._schema_of[0] is not self._registry:
                recorded = self._recorded()
                infos = Registry()
                newest: dict[str, int] = {}
                for spec in self._registry.all():
                    infos.add(FeatureInfo.of(spec))
                    newest[spec.name] = max(newest.get(spec.name, 0), spec.version)
                for info in recorded.all():  # older versions whose code is gone (a built-in
                    if info.version < newest.get(info.name, 0):  # segmenter's): readable
                        if info.version not in infos.versions(info.name):
                            infos.add(info)
                self._schema_of = (self._registry, infos)
            return self._schema_of[1]
        return self._recorded()

    def _recorded(self) -> Registry:
        """Every feature version the catalog records, as code-free infos (cached by stamp)."""
        stamp = self.catalog.stamp()
        if self._schema is not None and self._schema[0] == stamp:
            return self._schema[1]
        infos = Registry()
        for row in self.catalog.query(
            """SELECT name, version, entity, produces, output_type, declaration, description
               FROM features ORDER BY name, version"""
        ):
            infos.add(FeatureInfo.from_row(*row))
        self._schema = (stamp, infos)
        return infos

    def feature(self, name: str, version: int | None = None) -> FeatureSpec:
        """A declared feature by name (``name@v`` names a version; newest otherwise)."""
        if "@" in name and version is None:
            name, _, v = name.partition("@")
            if not v.isdigit():
                raise ResolveError(f"bad feature version {v!r} in {name}@{v}: use name@N")
            version = int(v)
        return self.registry.get(name, version)

    def segmentation(
        self,
        entity_type: str,
        using: tuple[str, int | None, Mapping[str, Any]] | None = None,
        code: bool = False,
    ) -> Segmentation:
        """The segmentation of a span type: ``using`` (segmenter name, version or None,
        parameters: a query's ``USING``), else the store's setting
        (:meth:`~amberlite.store.Store.set_segmenter`), else the type's default segmenter
        with its declared parameters. ``code``: with the FeatureSpec (to compute)."""
        reg = self.registry if code else self.schema()
        if using is None:
            chosen = (self.names().segmenters or {}).get(entity_type)
            if chosen is not None:
                using = (chosen[0], None, chosen[1])
        if using is None:
            prod = reg.producer_of(entity_type)
            if prod is None:
                raise ResolveError(
                    f"no segmenter produces entity type {entity_type!r}",
                    name=entity_type,
                    candidates=self.entity_types(),
                )
            return Segmentation.of(prod)
        name, version, params = using
        return Segmentation.of(reg.segmenter(entity_type, name, version), params)

    def producer_label(self, entity_type: str, params: Mapping[str, Any] | None = None) -> str:
        """``<segmenter>@<version>/<params_key>`` of the segmentation that makes a span type
        in this store (``params``: other parameters of that segmenter)."""
        seg = self.segmentation(entity_type)
        if params is not None:
            seg = Segmentation.of(seg.spec, params)
        return seg.label

    # -- names --------------------------------------------------------------------------------
    def names(self) -> CatalogNames:
        """Asset names and entity types, read in one catalog transaction and reused until the
        catalog file changes (planning then opens no connection)."""
        stamp = self.catalog.stamp()
        if self._names is not None and self._names[0] == stamp:
            return self._names[1]
        with self.catalog.read() as con:
            assets = con.execute("SELECT asset_id, alias FROM assets ORDER BY alias").fetchall()
            types = [r[0] for r in con.execute("SELECT name FROM entity_types").fetchall()]
            settings = con.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'segmenter:%'"
            ).fetchall()
        names = CatalogNames(
            {a: i for i, a in assets},
            frozenset(i for i, _ in assets),
            tuple(types),
            {i: a for i, a in assets},
            {k.partition(":")[2]: _setting(v) for k, v in settings},
        )
        self._names = (stamp, names)
        return names

    def entity_types(self) -> list[str]:
        types = set(self.names().entity_types)
        types |= {s.produces for s in self.schema().all() if s.produces}
        return sorted(types)

    def resolve_assets(self, refs: Sequence[str] | str | None) -> list[str] | None:
        """Asset ids for aliases or ids; None stays None (every asset). Unknown names suggest
        the closest alias."""
        if refs is None:
            return None
        if isinstance(refs, str):
            refs = [refs]
        names = self.names()
        return list(resolve_asset_refs(refs, names.by_alias, names.ids))

    # -- media --------------------------------------------------------------------------------
    def asset_records(self, asset_ids: Sequence[str] | None = None) -> list[AssetRecord]:
        """Catalog records of assets (every asset when None), by asset id."""
        from amberlite.core.entities import AssetRecord

        with self.catalog.read() as con:
            if asset_ids is None:
                cur = con.execute("SELECT * FROM assets ORDER BY asset_id")
            else:
                cur = con.execute(
                    "SELECT * FROM assets WHERE asset_id IN (SELECT unnest(?::TEXT[])) "
                    "ORDER BY asset_id",
                    [list(asset_ids)],
                )
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        return [AssetRecord.from_row(r) for r in rows]

    def asset_views(self, asset_ids: Sequence[str], decode: Decode) -> list[AssetView]:
        from amberlite.core.entities import AssetView

        return [AssetView(r, decode, self.media_cache) for r in self.asset_records(asset_ids)]


def _setting(value: str) -> tuple[str, Mapping[str, Any]]:
    import json

    got = json.loads(value)
    return got["segmenter"], got.get("params") or {}


def context_of(obj: Any) -> StoreContext:
    """The context of a Store (or a context itself): lower layers accept either."""
    ctx = getattr(obj, "ctx", obj)
    if not isinstance(ctx, StoreContext):
        raise TypeError(f"expected a Store or a StoreContext, not {type(obj).__name__}")
    return ctx

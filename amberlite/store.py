"""The Python API: ``amberlite.open(path)`` returns a :class:`Store`.

Example:
    >>> import amberlite, tempfile
    >>> store = amberlite.open(tempfile.mkdtemp())
    >>> store.status()["assets"]
    0
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amberlite.catalog import Catalog
from amberlite.catalog.diff import Change, classify
from amberlite.context import StoreContext
from amberlite.define.registry import Registry
from amberlite.errors import (
    AmberliteError,
    ChangeRefused,
    DefinitionError,
    ResolveError,
    StoreError,
)
from amberlite.memo.key import memo_key
from amberlite.memo.store import MemoStore, now
from amberlite.run.resolve import Resolver, RunStats
from amberlite.version import __version__

if TYPE_CHECKING:  # the façade imports what a method needs when it runs (a fast CLI)
    import polars as pl
    import pyarrow as pa

    from amberlite.annotations import Annotations
    from amberlite.connectors.manager import ReplicaManager
    from amberlite.define.decorators import FeatureSpec
    from amberlite.ingest import IngestReport

log = logging.getLogger(__name__)
DEFAULT_STORE = "amberlite-store"


def open(path: str | os.PathLike[str] | None = None, create: bool = True) -> Store:  # noqa: A001
    """Open the store at ``path`` ($AMBERLITE_STORE or ./amberlite-store by default).

    ``create=True`` (the default) creates it when missing, with any missing parent folders;
    ``create=False`` opens only an existing store and raises :class:`StoreError` otherwise
    (what the command's read-only commands use). A path that is a file is always refused."""
    return Store(path or os.environ.get("AMBERLITE_STORE", DEFAULT_STORE), create=create)


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding an amberlite catalog."""
    return (Path(path) / "catalog.duckdb").is_file()


def check_store_path(path: str | os.PathLike[str], create: bool, strict: bool = False) -> None:
    """Raise :class:`StoreError` when ``path`` cannot be opened as a store in this mode.

    ``create=False``: the store must exist. ``create=True`` with ``strict=True`` (the
    command's writing commands): a new store is made only in an empty or missing folder whose
    parent exists."""
    root = Path(path)
    if is_store(root):
        return
    if root.is_file():
        hint = f" (did you mean `--store {root.parent}`?)" if root.name == "catalog.duckdb" else ""
        raise StoreError(f"{root} is a file, not a store folder{hint}")
    if not create:
        raise StoreError(
            f"no amberlite store at {root} (create one with `amberlite --store {root} init`, "
            "or ingest/apply into it)"
        )
    if not strict:
        return
    if root.is_dir():
        try:
            others = next(root.iterdir(), None) is not None
        except OSError as e:
            raise StoreError(f"cannot read {root}: {e.strerror or e}") from None
        if others:
            raise StoreError(
                f"{root} is a folder holding other files, not an amberlite store: "
                "choose a new or empty folder for the store"
            )
    elif not root.absolute().parent.is_dir():
        raise StoreError(
            f"cannot create a store at {root}: its parent folder "
            f"{root.absolute().parent} does not exist"
        )


def refusal_of(changes: Sequence[Change]) -> ChangeRefused | None:
    """The error ``apply`` (without force) raises for these changes; None when it accepts."""
    refused = [c for c in changes if c.resolution == "changed"]
    if not refused:
        return None
    return ChangeRefused(
        "refused: "
        + "; ".join(c.describe() for c in refused)
        + ". Bump the version to keep both, or apply with --force to accept the new "
        "code as the same version (stored values are kept)."
    )


class Store:
    """A feature store on disk: catalog, Parquet values, registry of features."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        root = Path(path).absolute()
        check_store_path(root, create)
        try:
            catalog = Catalog(root)
        except OSError as e:
            raise StoreError(f"cannot create a store at {root}: {e.strerror or e}") from None
        memo = MemoStore(root, catalog)
        self.ctx = StoreContext(
            root, catalog, memo, self._load_registry, root / "media", self._open_replicas
        )
        memo.listeners.append(self._on_commit)  # replica indexes follow commits
        self.ctx.resolver = Resolver(self.ctx)
        self._annotations: Annotations | None = None
        if builtins_digest() != self._recorded_builtins_digest():
            self.ctx.registry  # noqa: B018 - loading the registry records changed built-ins

    # -- the parts of the store (see amberlite.context) -----------------------------------------
    @property
    def root(self) -> Path:
        return self.ctx.root

    @property
    def catalog(self) -> Catalog:
        return self.ctx.catalog

    @property
    def memo(self) -> MemoStore:
        return self.ctx.memo

    @property
    def media_cache(self) -> Path:
        return self.ctx.media_cache

    @property
    def resolver(self) -> Resolver:
        return self.ctx.resolver

    @property
    def replicas(self) -> ReplicaManager:
        """The store's replicas (opened on first use: searches and commits reach them)."""
        return self.ctx.replicas

    def _open_replicas(self) -> ReplicaManager:
        from amberlite.connectors.manager import ReplicaManager

        return ReplicaManager(self.ctx)

    def _on_commit(self, commits: list[tuple[Any, int]]) -> None:
        self.ctx.replicas.on_commits(commits)

    @property
    def annotations(self) -> Annotations:
        """Annotations from models and people (see amberlite.annotations)."""
        if self._annotations is None:
            from amberlite.annotations import Annotations

            self._annotations = Annotations(self.ctx)
        return self._annotations

    @property
    def registry(self) -> Registry:
        return self.ctx.registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self.ctx.registry = registry

    # -- definitions --------------------------------------------------------------------------
    def _load_registry(self) -> Registry:
        """Built-ins plus every applied definition file's features that still load (called by
        the context on first use of ``registry``: planning and reading stored values do not
        need it)."""
        from amberlite.define.loader import load_definitions
        from amberlite.library import builtin_features

        registry = Registry()
        builtins = builtin_features()
        for spec in builtins:
            registry.add(spec)
        self._record_builtins(registry, builtins)
        rows = self.catalog.query(
            """SELECT f.name, f.version, d.sha, d.path, d.source FROM features f
               JOIN definitions d ON f.definition_sha = d.sha ORDER BY f.applied_at"""
        )
        by_sha: dict[str, tuple[str, str, set[tuple[str, int]]]] = {}
        for name, version, sha, path, source in rows:
            by_sha.setdefault(sha, (path, source, set()))[2].add((name, version))
        for sha, (path, source, wanted) in by_sha.items():
            try:
                specs = load_definitions(path, source)
            except DefinitionError as e:
                log.warning("cannot load applied definitions %s (%s): %s", path, sha[:8], e)
                continue
            for spec in specs:
                if (spec.name, spec.version) in wanted:
                    registry.add(spec)
        return registry

    def _recorded_builtins_digest(self) -> str | None:
        rows = self.catalog.query("SELECT value FROM meta WHERE key = 'builtins_digest'")
        return rows[0][0] if rows else None

    def _record_builtins(self, registry: Registry, specs: Sequence[FeatureSpec]) -> None:
        """Record the built-in features whose fingerprint changed, and the digest of the code
        they came from (checked at every open without importing it)."""
        known = {
            (r[0], r[1]): r[2]
            for r in self.catalog.query(
                "SELECT name, version, fingerprint FROM features WHERE builtin"
            )
        }
        fresh = [(s, registry.fingerprint(s)) for s in specs]
        fresh = [(s, fp) for s, fp in fresh if known.get((s.name, s.version)) != fp]
        digest = builtins_digest()
        if not fresh and self._recorded_builtins_digest() == digest:
            return
        with self.catalog.write() as con:
            con.execute(
                "INSERT INTO meta VALUES ('builtins_digest', ?) ON CONFLICT DO UPDATE "
                "SET value = excluded.value",
                [digest],
            )
            for spec, fp in fresh:
                self._upsert_feature(con, spec, fp, None, builtin=True)

    @staticmethod
    def _upsert_feature(con, spec: FeatureSpec, fp: str, sha: str | None, builtin: bool) -> None:
        import json

        con.execute(
            """INSERT INTO features VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT DO UPDATE SET fingerprint = excluded.fingerprint,
                 code_digest = excluded.code_digest, declaration = excluded.declaration,
                 output_type = excluded.output_type, definition_sha = excluded.definition_sha,
                 on_ingest = excluded.on_ingest, description = excluded.description""",
            [
                spec.name,
                spec.version,
                spec.entity,
                spec.produces,
                fp,
                spec.code_digest(),
                str(spec.output),
                json.dumps(spec.declaration(), default=str),
                sha,
                builtin,
                spec.on_ingest,
                spec.description,
                now(),
            ],
        )

    def plan_apply(self, path: str | os.PathLike[str]) -> list[Change]:
        """Classify a definition file's features against the catalog; applies nothing."""
        from amberlite.define.loader import load_annotation_defs, load_definitions

        return self._diff(load_definitions(path))[0] + self.annotations.classify(
            *load_annotation_defs(path)
        )

    def _diff(self, specs: list[FeatureSpec]) -> tuple[list[Change], Registry]:
        trial = Registry()
        for s in self.registry.all():
            trial.add(s)
        for s in specs:
            trial.add(s)
        for s in specs:
            trial.check_applicable(s)
        stored: dict[str, dict[int, str]] = {}
        declared: dict[tuple[str, int], str] = {}
        for name, version, fp, decl in self.catalog.query(
            "SELECT name, version, fingerprint, declaration FROM features"
        ):
            stored.setdefault(name, {})[version] = fp
            declared[(name, version)] = decl
        changes = []
        for s in specs:
            change = classify(s.name, s.version, trial.fingerprint(s), stored.get(s.name, {}))
            if change.resolution == "changed" and s.models:
                reason = _model_change(s, declared.get((s.name, s.version)))
                if reason:
                    change = dataclasses.replace(change, reason=reason)
            changes.append(change)
        return changes, trial

    def apply(self, path: str | os.PathLike[str], force: bool = False) -> list[Change]:
        """Record a definition file's features; refuse code changed without a version bump."""
        path = Path(path)
        try:
            source = path.read_text()
        except OSError as e:
            raise DefinitionError(f"{path}: cannot read definition file: {e}") from e
        from amberlite.define.loader import load_annotation_defs, load_definitions

        specs = load_definitions(path, source)
        builtin = {s.name for s in self.registry.all() if s.module.startswith("amberlite.")}
        clash = [s.name for s in specs if s.name in builtin]
        if clash:
            raise DefinitionError(f"{path}: {', '.join(clash)} is a built-in feature name")
        changes, trial = self._diff(specs)
        a_types, annotators = load_annotation_defs(path, source)
        a_changes = self.annotations.classify(a_types, annotators)
        refusal = refusal_of(changes + a_changes)
        if refusal is not None and not force:
            raise refusal
        sha = hashlib.sha256(source.encode()).hexdigest()
        with self.catalog.write() as con:
            con.execute(
                "INSERT INTO definitions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [sha, str(path.absolute()), source, now()],
            )
            for spec, change in zip(specs, changes):
                self._upsert_feature(con, spec, change.fingerprint, sha, builtin=False)
            self.annotations.record(con, a_types, annotators, sha)
        self.registry = trial
        return changes + a_changes

    def drop(self, name: str, version: int | None = None) -> list[str]:
        """Remove a feature (every version, or ``version``) from the store; returns the
        name@version keys removed.

        Refused for a built-in, while another feature takes it as an input or is over the
        entity type it produces, and while a replica follows it. Its catalog record, its
        failures and its claims are deleted; its runs stay as history; its value files are
        retired (readers stop seeing them at once) and removed by the next ``compact``."""
        if "@" in name and version is None:
            name, _, v = name.partition("@")
            if not v.isdigit():
                raise ResolveError(f"bad feature version {v!r} in {name}@{v}: use name@N")
            version = int(v)
        registry = self.registry
        gone = [registry.get(name, version)] if version is not None else []
        if version is None:
            gone = [registry.get(name, v) for v in registry.versions(name)] or [registry.get(name)]
        if any(s.module.startswith("amberlite.") for s in gone):
            raise DefinitionError(f"{name} is a built-in feature: it cannot be dropped")
        keys = {s.key for s in gone}
        produced = {s.produces for s in gone if s.produces}
        users = []
        for s in registry.all():
            if s.key in keys:
                continue
            uses = any(self._input_key(ref) in keys for ref in s.inputs)
            if uses or (s.entity in produced and self._producer_after(s.entity, keys) is None):
                users.append(s.key)
        if users:
            raise DefinitionError(
                f"cannot drop {', '.join(sorted(keys))}: {', '.join(users)} depend(s) on it "
                "(drop those first)"
            )
        with self.catalog.write() as con:
            for s in gone:
                args = [s.name, s.version]
                replicas = con.execute(
                    "SELECT target FROM replicas WHERE feature = ? AND version = ?", args
                ).fetchall()
                if replicas:
                    raise DefinitionError(
                        f"cannot drop {s.key}: a {replicas[0][0]} replica follows it "
                        f"(remove it first: amberlite replicate remove {s.key})"
                    )
                con.execute(
                    """INSERT INTO retired_files
                       SELECT file_id, NULL, now() FROM memo_files WHERE feature = ?
                       AND version = ? AND file_id NOT IN (SELECT file_id FROM retired_files)""",
                    args,
                )
                for table in ("features", "failures", "claims"):
                    key_col = "name" if table == "features" else "feature"
                    con.execute(f"DELETE FROM {table} WHERE {key_col} = ? AND version = ?", args)
        trial = Registry()
        for s in registry.all():
            if s.key not in keys:
                trial.add(s)
        self.registry = trial
        return sorted(keys)

    def _input_key(self, ref: Any) -> str | None:
        try:
            return self.registry.resolve_input(ref).key
        except ResolveError:
            return None

    def _producer_after(self, entity_type: str, gone: set[str]) -> FeatureSpec | None:
        found = [s for s in self.registry.all() if s.produces == entity_type and s.key not in gone]
        return found[0] if found else None

    def features(self) -> pl.DataFrame:
        """name, version, entity, output type, fingerprint, rows stored."""
        from amberlite.catalog.tables import features_table

        return features_table(self.catalog)

    # -- assets -------------------------------------------------------------------------------
    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        aliases: Sequence[str] | None = None,
        progress: bool | None = None,
        compute: bool = True,
    ) -> IngestReport:
        """Add media files. A file that cannot be read fails alone, with its reason recorded.

        The asset id is a content hash: re-ingesting a moved or renamed file updates its path
        and keeps its id, alias and values. Features marked ``on_ingest`` are computed for
        new assets when ``compute`` is true.
        """
        from amberlite.ingest import ingest

        return ingest(self.ctx, paths, aliases, progress, compute)

    def assets(self) -> pl.DataFrame:
        from amberlite.catalog.tables import assets_table

        return assets_table(self.catalog)

    def resolve_assets(self, refs: Sequence[str] | str | None) -> list[str] | None:
        """Asset ids for aliases or ids; None stays None (every asset). Unknown names suggest
        the closest alias."""
        return self.ctx.resolve_assets(refs)

    def entity_types(self) -> list[str]:
        return self.ctx.entity_types()

    def entities(
        self, entity_type: str, assets: Sequence[str] | str | None = None, compute: bool = True
    ) -> pl.DataFrame:
        """The entities of a type in scope (spans are segmented first when missing): ``id``,
        ``ref``, ``asset``, ``asset_id`` and, for spans, ``index``, frames and seconds; in time
        order."""
        asset_ids = self.resolve_assets(assets)
        if entity_type not in ("asset", "frame"):
            if self.registry.producer_of(entity_type) is None:
                raise ResolveError(
                    f"unknown entity type {entity_type!r}",
                    name=entity_type,
                    candidates=self.entity_types(),
                )
            if compute:
                seg = self.ctx.segmentation(entity_type, code=True)
                self.resolver.materialize(seg.spec, dict(seg.params), asset_ids)
        df = self.resolver.entity_table(entity_type, asset_ids).rename({"entity_id": "id"})
        if "idx" in df.columns:
            df = df.rename({"idx": "index"})
        from amberlite.search.targets import with_refs

        return with_refs(self.ctx, entity_type, df)

    def set_segmenter(self, entity_type: str, name: str | None, **params: Any) -> str:
        """Choose how this store segments a span type: the segmenter ``name`` (``"transnetv2"``
        or ``"shots"`` for ``"shot"``) with ``params``; None goes back to the type's default.
        Queries, features, NEAREST and MATCH then use that segmentation; entities of another
        one stay stored and are named with ``FROM shots USING <segmenter>``. Returns the
        segmentation's description (``transnetv2@1``)."""
        import json

        key = f"segmenter:{entity_type}"
        if entity_type in ("asset", "frame") or self.registry.producer_of(entity_type) is None:
            raise ResolveError(
                f"{entity_type!r} is not a span type a segmenter produces",
                name=entity_type,
                candidates=[t for t in self.entity_types() if t not in ("asset", "frame")],
            )
        if name is None:
            with self.catalog.write() as con:
                con.execute("DELETE FROM meta WHERE key = ?", [key])
            return self.ctx.segmentation(entity_type).describe()
        spec = self.registry.segmenter(entity_type, name)
        spec.resolve_params(params)  # unknown names are an error
        value = json.dumps({"segmenter": name, "params": params}, sort_keys=True)
        with self.catalog.write() as con:
            con.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                [key, value],
            )
        return self.ctx.segmentation(entity_type).describe()

    # -- values -------------------------------------------------------------------------------
    def feature(self, name: str, version: int | None = None) -> FeatureSpec:
        """A declared feature (``name@v`` names a version; the newest otherwise)."""
        return self.ctx.feature(name, version)

    def materialize(
        self,
        name: str | Sequence[str],
        assets: Sequence[str] | str | None = None,
        *,
        version: int | None = None,
        params: Mapping[str, Any] | None = None,
        retry_failed: bool = False,
        executor: Any = None,
        progress: bool | None = None,
        trigger: str = "request",
    ) -> RunStats | list[RunStats]:
        """Compute every missing value of a feature (inputs first) in the asset scope;
        returns its :class:`RunStats`.

        ``name`` may be a list of features (``name@v`` each; ``version`` and ``params`` then
        are not allowed): the span features among them that can share a decode are computed
        together, each batch of spans decoded once for all of them; returns a list of
        :class:`RunStats`, one per name."""
        if not isinstance(name, str):
            if version is not None or params is not None:
                raise AmberliteError(
                    "version= and params= name one feature: with several, write name@version"
                )
            return self.resolver.materialize_many(
                [(self.feature(n), None) for n in name],
                self.resolve_assets(assets),
                retry_failed=retry_failed,
                executor=executor,
                progress=progress,
                trigger=trigger,
            )
        spec = self.feature(name, version)
        return self.resolver.materialize(
            spec,
            params,
            self.resolve_assets(assets),
            retry_failed=retry_failed,
            executor=executor,
            progress=progress,
            trigger=trigger,
        )

    def get(
        self,
        name: str,
        assets: Sequence[str] | str | None = None,
        *,
        version: int | None = None,
        params: Mapping[str, Any] | None = None,
        compute: bool = True,
        executor: Any = None,
        progress: bool | None = None,
    ) -> pl.DataFrame:
        """Values of a feature as a polars DataFrame: ``id``, ``ref`` (``film1/12``), ``asset``
        (alias), ``asset_id``, ``<name>``, in time order.

        Stored values are read from Parquet; missing ones are computed first unless
        ``compute=False``. Entities whose computation failed are absent (see ``status``).
        """
        spec = self.feature(name, version)
        asset_ids = self.resolve_assets(assets)
        if compute and not self.resolver.is_complete(spec, params, asset_ids):
            self.resolver.materialize(spec, params, asset_ids, executor=executor, progress=progress)
        table = self.read_values(spec, params, asset_ids)
        from amberlite.search.targets import with_refs

        # values of the store's segmentation only (another one's are read with USING in AQL)
        table = table.rename_columns(["id", "asset_id", spec.name])
        return with_refs(self.ctx, spec.entity, table, members_only=True)

    def read_values(
        self,
        spec: FeatureSpec,
        params: Mapping[str, Any] | None,
        asset_ids: Sequence[str] | None = None,
        entity_ids: Sequence[str] | None = None,
    ) -> pa.Table:
        key = memo_key(spec, params)
        return self.memo.read(key, spec.output, asset_ids=asset_ids, entity_ids=entity_ids)

    def value_files(
        self, name: str, version: int | None = None, params: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The committed Parquet files of a feature (for direct readers)."""
        return self.memo.files(memo_key(self.feature(name, version), params))

    # -- queries ------------------------------------------------------------------------------
    def query(self, text: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run one AQL statement (see docs/aql.md); missing feature values are computed.
        ``params`` fill its ``$name`` placeholders (``{"film": "film1"}``)."""
        from amberlite.query import run_query

        return run_query(self, text, params)

    def explain(self, text: str, params: Mapping[str, Any] | None = None) -> str:
        """The plan of an AQL statement and what each feature would read or compute."""
        from amberlite.query import explain

        return explain(self, text, params)

    # -- scale-out: training data and triggers (amberlite.dataset, amberlite.triggers) --------
    def dataset(self, feature: str, assets: Sequence[str] | str | None = None, **options: Any):
        """A torch IterableDataset streaming a feature's values (see amberlite.dataset)."""
        from amberlite.dataset import dataset

        return dataset(self, feature, assets, **options)

    def backfill(self, feature: str, **options: Any):
        """Compute a new feature version over the assets that had an older one, resumably
        (see amberlite.triggers.backfill)."""
        from amberlite.triggers import backfill

        return backfill(self, feature, **options)

    def watch(self, folder: str | os.PathLike[str], interval: float = 2.0, **options: Any):
        """Poll a folder; ingest new media and compute on_ingest features for it (see
        amberlite.triggers.watch)."""
        from amberlite.triggers import watch

        return watch(self, folder, interval, **options)

    # -- maintenance and status ---------------------------------------------------------------
    def compact(self, name: str | None = None) -> dict[str, int]:
        """Merge each dataset's small files into one; returns files merged per feature."""
        specs = [self.feature(name)] if name else self.registry.all()
        merged = {}
        for spec in specs:
            keys = self.catalog.query(
                """SELECT DISTINCT params_key, params FROM memo_files WHERE feature = ?
                   AND version = ?""",
                [spec.name, spec.version],
            )
            from amberlite.memo.key import MemoKey

            for pkey, pjson in keys:
                n = self.memo.compact(MemoKey(spec.name, spec.version, pkey, pjson), spec.output)
                if n:
                    merged[f"{spec.key}/{pkey}"] = n
        self.memo.gc()
        self.annotations.gc()
        return merged

    def failures(self, name: str | None = None) -> pl.DataFrame:
        from amberlite.catalog.tables import failures_table

        return failures_table(self.catalog, name)

    def failure_groups(self, name: str | None = None) -> pl.DataFrame:
        """Failures grouped by feature@version and message: ``entities`` (the count), the
        full ``error`` and an ``example`` entity."""
        from amberlite.catalog.tables import failure_groups_table

        return failure_groups_table(self.catalog, name)

    def status(self) -> dict[str, Any]:
        """Assets, features (name@version) with rows stored, failures, recent runs and
        triggers (what ran on new media or as a backfill, when and why)."""
        from amberlite.triggers import recent as recent_triggers

        with self.catalog.read() as con:
            n_assets = con.execute("SELECT count(*) FROM assets").fetchone()[0]
            ingest_failures = con.execute(
                "SELECT path, error FROM ingest_failures ORDER BY path"
            ).fetchall()
            runs = con.sql(
                """SELECT run_id, feature || '@' || version AS feature,
                          CASE WHEN ends_with(trigger, ' (interrupted)') THEN 'interrupted'
                               WHEN computed = 0 AND failed > 0 THEN 'failed'
                               ELSE 'done' END AS state,
                          executor, regexp_replace(trigger, ' \\(interrupted\\)$', '') AS trigger,
                          started_at, requested, stored, computed, failed,
                          round(seconds, 3) AS seconds
                   FROM runs ORDER BY run_id DESC LIMIT 10"""
            ).pl()
        return {
            "store": str(self.root),
            "assets": n_assets,
            "features": self.features(),
            "failures": self.failures(),
            "failure_groups": self.failure_groups(),
            "ingest_failures": ingest_failures,
            "runs": runs,
            "triggers": recent_triggers(self),
        }

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


def _model_change(spec: FeatureSpec, declaration: str | None) -> str:
    """``model net@1 weights changed (sha256 ab.. -> cd..)`` when a model file of ``spec``
    differs from the one recorded in ``declaration`` (the catalog's JSON); else ''."""
    import json

    applied = json.loads(declaration or "{}").get("models") or {}
    for m in spec.models:
        was = (applied.get(m.name) or {}).get("sha256")
        now_sha = m.sha256()
        if was and was != now_sha:
            return f"model {m.key} weights changed (sha256 {was[:12]} -> {now_sha[:12]})"
    return ""


def builtins_digest() -> str:
    """A hash of the code the built-in features come from (and of what fingerprints them),
    read as bytes: a store records its built-ins again when it changes."""
    here = Path(__file__).parent
    files = sorted((here / "library").glob("*.py")) + [
        here / "define" / "decorators.py",
        here / "define" / "fingerprint.py",
        here / "define" / "model.py",
        here / "media" / "decode.py",
    ]
    h = hashlib.sha256(__version__.encode())
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()

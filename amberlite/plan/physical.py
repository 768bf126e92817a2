"""Physical planning: memo read | compute per feature, and the DuckDB SQL that runs a plan.

The one decision (:func:`decide`): a feature is *computed* when some entity of its scope has
neither a stored value nor a recorded failure; otherwise it is *read*. The scope is the
entities of its source after the pushed-down entity filters (an asset feature broadcast over
spans: the assets of those entities). Counting never computes; :func:`prepare` computes only
when asked to (``compute=True``), through ``store.resolver.materialize``, which computes only
what is missing.

SQL: every source ``i`` becomes CTE ``s{i}`` (its entity table with the pushed filters) and
``t{i}`` (those entities LEFT JOINed to the values of its features, read with ``read_parquet``
from the committed memo files). Literals are DuckDB parameters (``$p0``...); identifiers in
the SQL are generated (``t0``, ``v1``, ``c2``) or fixed column names checked at planning time,
so no user text is ever spliced into SQL. Result columns are renamed afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from amberlite.entities import AssetRecord, cached_frame_index
from amberlite.errors import AqlError, AqlTypeError
from amberlite.memo.store import _duck_array_type
from amberlite.plan import logical as L
from amberlite.plan.build import TIME_COLUMNS, _stamp
from amberlite.run.resolve import memo_key
from amberlite.syntax import ast as A

if TYPE_CHECKING:
    from amberlite.api import Store

log = logging.getLogger(__name__)
FRAME_COLUMNS = frozenset({"start_frame", "end_frame", "n", "frame_count"})
SQL_FUNCTIONS = {
    "count": "count",
    "min": "min",
    "max": "max",
    "avg": "avg",
    "sum": "sum",
    "abs": "abs",
    "round": "round",
    "floor": "floor",
    "ceil": "ceil",
    "sqrt": "sqrt",
    "least": "least",
    "greatest": "greatest",
    "coalesce": "coalesce",
    "lower": "lower",
    "upper": "upper",
    "length": "length",
}


def decide(counts: dict[str, int]) -> str:
    """THE memo decision: ``compute`` when an entity has no value and no failure, else ``read``."""
    missing = counts["requested"] - counts["stored"] - counts["failed"]
    return "compute" if missing > 0 else "read"


@dataclass
class FeatureStep:
    """What the physical plan does for one feature (or a segmenter making a source's spans)."""

    label: str
    spec: Any
    params: dict[str, Any] | None
    asset_ids: list[str] | None
    entity_ids: list[str] | None
    counts: dict[str, int]
    action: str  # read | compute
    note: str = ""

    def line(self) -> str:
        c = self.counts
        missing = c["requested"] - c["stored"] - c["failed"]
        return (
            f"{self.label}: stored {c['stored']}, missing {missing}, failed {c['failed']}"
            f" -> {self.action}{self.note}"
        )


@dataclass
class Prepared:
    """The steps of a SELECT, in the order they run."""

    plan: L.SelectPlan
    steps: list[FeatureStep] = field(default_factory=list)
    nearest: Any = None  # the NEAREST search result (polars, see plan.nearest.run_search)


# ---------------------------------------------------------------- phase 1: scope and decide


@contextlib.contextmanager
def duck_errors() -> Iterator[None]:
    """DuckDB's run-time errors (integer overflow, a bad cast) as an AqlError."""
    try:
        yield
    except (duckdb.Error, OverflowError) as e:
        raise AqlError(f"the query could not be evaluated: {e}") from None


def pushed_filters(node: L.PlanNode, out: dict[int, A.Expr] | None = None) -> dict[int, A.Expr]:
    """Source index -> its pushed entity filter."""
    out = {} if out is None else out
    if isinstance(node, L.Filter) and node.pushed and L.scan_source(node.child) is not None:
        out[L.scan_source(node.child)] = node.predicate
    for attr in ("child", "left", "right"):
        c = getattr(node, attr, None)
        if c is not None:
            pushed_filters(c, out)
    return out


class Reader:
    """One catalog read connection, opened when first needed and closed before a compute
    (which takes the write lock), so that a warm query opens the catalog once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cm: Any = None
        self.con: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self._cm = self.store.catalog.read()
            self.con = self._cm.__enter__()
        return self.con

    def close(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.con = self._cm, None, None
            cm.__exit__(None, None, None)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare(store: Store, plan: L.SelectPlan, compute: bool, reader: Reader) -> Prepared:
    """Count each feature's scope and decide read | compute; compute when ``compute``.

    With NEAREST, ``compute`` first runs the search (computing the searched feature over the
    FROM set's assets when missing); the other features of that source are then scoped to the
    k entities found. Without ``compute`` (EXPLAIN) they are counted over the whole set."""
    prep = Prepared(plan)
    pushed = pushed_filters(plan.root)
    near = plan.nearest
    if near is not None and compute:
        from amberlite.plan.nearest import run_search

        reader.close()  # the search may compute (write lock)
        prep.nearest = run_search(store, plan)
    for src in plan.sources:
        assets = list(src.asset_ids) if src.asset_ids is not None else None
        note = ""
        if src.entity_type not in ("asset", "frame"):
            prod = store.registry.producer_of(src.entity_type)
            seg = _step(store, prod.key, prod, None, assets, None, compute, reader)
            prep.steps.append(seg)
            if seg.action == "compute" and not compute:
                note = f" (+ {src.entity_type}s of assets not segmented yet)"
        ids: list[str] | None = None
        id_assets = assets
        searched = near is not None and near.source == src.index
        seg_text = f", {note[2:-1]}" if note else ""  # "+ shots of assets not segmented yet"
        near_note = ""
        if searched and not compute:
            spec = store.registry.get(near.feature.name, near.feature.version)
            params = dict(near.feature.params)
            step = _step(store, near.feature.label, spec, params, assets, None, False, reader)
            step.note = f" (searched{seg_text})"
            if note:
                step.action = "compute"
            prep.steps.append(step)
            near_note = f" (only the k nearest{seg_text})"
        elif src.index in pushed or searched:
            ids, id_assets = _scoped_ids(
                store, plan, src, pushed.get(src.index), reader.get(), prep.nearest
            )
        for use in plan.features:
            if use.source != src.index:
                continue
            spec = store.registry.get(use.name, use.version)
            params = dict(use.params)
            if use.by_asset:
                step = _step(store, use.label, spec, params, id_assets, None, compute, reader)
            else:
                step = _step(store, use.label, spec, params, assets, ids, compute, reader)
                if note:  # spans still to segment will need values too
                    step.note, step.action = note, "compute"
            if near_note:
                step.note = near_note
            prep.steps.append(step)
    return prep


def _step(
    store, label, spec, params, assets, ids, compute: bool, reader: Reader | None = None
) -> FeatureStep:
    counts = _cached_counts(store, spec, params, assets, ids, reader)
    action = decide(counts)
    if compute and action == "compute":
        log.debug("computing %s over %s entities", label, counts["requested"])
        if reader is not None:
            reader.close()  # materialize takes the write lock
        store.resolver.materialize(spec, params, assets, entity_ids=ids)
    return FeatureStep(label, spec, params, assets, ids, counts, action)


_COUNTS: OrderedDict[tuple, dict[str, int]] = OrderedDict()
_COUNTS_MAX = 256


def _cached_counts(store, spec, params, assets, ids, reader: Reader | None) -> dict[str, int]:
    """``resolver.counts``, remembered until the catalog changes: every input of the count
    (entities, memo files, failures, claims) lives in the catalog, so an unchanged catalog file
    (same mtime, size and inode, :func:`amberlite.plan.build._stamp`) gives the same counts.
    A repeated (warm) query therefore skips the count queries."""
    key = memo_key(spec, params)
    scope = (
        str(store.root),
        _stamp(store),
        key.label,
        key.params_key,
        None if assets is None else tuple(assets),
        None if ids is None else hashlib.sha1("\0".join(ids).encode()).hexdigest(),
    )
    hit = _COUNTS.get(scope)
    if hit is not None:
        _COUNTS.move_to_end(scope)
        return dict(hit)
    con = reader.get() if reader is not None else None
    counts = store.resolver.counts(spec, params, assets, ids, con=con)
    _COUNTS[scope] = dict(counts)
    while len(_COUNTS) > _COUNTS_MAX:
        _COUNTS.popitem(last=False)
    return counts


def _scoped_ids(
    store: Store, plan: L.SelectPlan, src: L.Source, pred: A.Expr | None, con, nearest=None
) -> tuple[list[str], list[str]]:
    """Entity ids (and their assets) of a source that pass its pushed filter (and, with
    NEAREST, are among the k found)."""
    sql = Sql(store, plan, nearest)
    cte = sql.source_cte(src, pred)
    sql.register(con)
    with duck_errors():
        rows = con.execute(
            f"WITH s{src.index} AS ({cte}) SELECT id, asset_id FROM s{src.index}", sql.params
        ).fetchall()
    sql.unregister(con)
    return [r[0] for r in rows], sorted({r[1] for r in rows})


# ---------------------------------------------------------------- phase 2: SQL


class Sql:
    """Compiles a SELECT plan to one DuckDB statement with named parameters."""

    def __init__(self, store: Store, plan: L.SelectPlan, nearest: Any = None) -> None:
        self.store = store
        self.plan = plan
        self.nearest = nearest
        self.params: dict[str, Any] = {}
        self.tables: dict[str, pa.Table] = {}
        self.names: tuple[str, ...] = ()

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for name, table in self.tables.items():
            con.register(name, table)

    def unregister(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in self.tables:
            con.unregister(name)

    # -- entity sets --------------------------------------------------------------------------
    def source_cte(self, src: L.Source, pushed: A.Expr | None) -> str:
        i = src.index
        scope = "TRUE"
        if src.asset_ids is not None:
            scope = f"a.asset_id IN (SELECT unnest({self.bind(list(src.asset_ids))}::TEXT[]))"
        spf = "a.fps_den::DOUBLE / a.fps_num AS _spf"
        if src.entity_type == "asset":
            body = f"""SELECT a.asset_id AS id, a.alias AS asset, a.asset_id, 0 AS "index",
                0::BIGINT AS start_frame, a.frame_count AS end_frame, 0.0::DOUBLE AS start_s,
                a.duration_s AS end_s, a.alias, a.path, a.width, a.height, a.frame_count,
                a.duration_s, a.fps_num::DOUBLE / a.fps_den AS fps, {spf}
                FROM assets a WHERE {scope}"""
        elif src.entity_type == "frame":
            table = f"_frames{i}"
            self.tables[table] = self._frames(src)
            body = f"""SELECT x.asset_id || '/f' || x.n AS id, a.alias AS asset, x.asset_id,
                x.n AS "index", x.n AS start_frame, x.n + 1 AS end_frame, x.t AS start_s,
                x.t_end AS end_s, x.n, x.t, {spf}
                FROM {table} x JOIN assets a ON a.asset_id = x.asset_id WHERE {scope}"""
        else:
            producer = self.store.resolver.producer_label(src.entity_type)
            body = f"""SELECT e.entity_id AS id, a.alias AS asset, e.asset_id, e.idx AS "index",
                e.start_frame, e.end_frame, e.start_s, e.end_s, {spf}
                FROM entities e JOIN assets a ON a.asset_id = e.asset_id
                WHERE e.entity_type = {self.bind(src.entity_type)}
                AND e.producer = {self.bind(producer)} AND {scope}"""
        if self.plan.nearest is not None and self.plan.nearest.source == i:
            body = self._nearest_join(body)
        if pushed is None:
            return body
        return f"SELECT * FROM ({body}) AS t{i} WHERE {self.expr(pushed)}"

    def _nearest_join(self, body: str) -> str:
        """The entities of ``body`` that the NEAREST search found, with their ``score``."""
        if self.nearest is None:
            raise AqlError("NEAREST: the search has not run (internal error)")
        from amberlite.plan.nearest import search_table

        self.tables["_nearest"] = search_table(self.nearest)
        return f"SELECT b.*, n.score FROM ({body}) AS b JOIN _nearest AS n ON n.entity_id = b.id"

    def _frames(self, src: L.Source) -> pa.Table:
        """(asset_id, n, t, t_end) of every frame in scope, times from the exact frame index."""
        with self.store.catalog.read() as con:
            cur = con.execute("SELECT * FROM assets ORDER BY asset_id")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        wanted = set(src.asset_ids) if src.asset_ids is not None else None
        parts = {"asset_id": [], "n": [], "t": [], "t_end": []}
        for row in rows:
            if wanted is not None and row["asset_id"] not in wanted:
                continue
            rec = AssetRecord.from_row(row)
            sec = np.asarray(cached_frame_index(self.store.media_cache, rec).seconds)
            n = len(sec)
            parts["asset_id"].append(pa.array([rec.asset_id] * n, pa.string()))
            parts["n"].append(pa.array(np.arange(n, dtype=np.int64)))
            parts["t"].append(pa.array(sec, pa.float64()))
            end = np.append(sec[1:], max(float(rec.duration_s or 0.0), float(sec[-1])))
            parts["t_end"].append(pa.array(end, pa.float64()))
        types = {"asset_id": pa.string(), "n": pa.int64(), "t": pa.float64(), "t_end": pa.float64()}
        return pa.table(
            {
                k: pa.chunked_array(v, types[k]) if v else pa.array([], types[k])
                for k, v in parts.items()
            }
        )

    def feature_cte(self, use: L.FeatureUse, files: list[str]) -> str:
        spec = self.store.registry.get(use.name, use.version)
        cast = _duck_array_type(spec.output)
        value = f"value::{cast}" if cast else "value"
        if not files:
            return "SELECT NULL::TEXT AS k, NULL AS v WHERE false"
        return f"SELECT entity_id AS k, {value} AS v FROM read_parquet({self.bind(files)})"

    # -- the statement ------------------------------------------------------------------------
    def select(self, files: dict[int, list[str]]) -> str:
        plan = self.plan
        pushed = pushed_filters(plan.root)
        ctes = []
        for src in plan.sources:
            i = src.index
            ctes.append(f"s{i} AS ({self.source_cte(src, pushed.get(i))})")
            cols, joins = [f"t{i}.*"], []
            for use in plan.features:
                if use.source != i:
                    continue
                ctes.append(f"f{use.slot} AS ({self.feature_cte(use, files[use.slot])})")
                on = "asset_id" if use.by_asset else "id"
                cols.append(f"f{use.slot}.v AS v{use.slot}")
                joins.append(f"LEFT JOIN f{use.slot} ON f{use.slot}.k = t{i}.{on}")
            ctes.append(f"t{i} AS (SELECT {', '.join(cols)} FROM s{i} AS t{i} {' '.join(joins)})")
        parts = self._clauses(plan.root)
        return "WITH " + ",\n".join(ctes) + "\n" + parts

    def _clauses(self, root: L.PlanNode) -> str:
        limit = sort = having = project = agg = where = None
        node = root
        while True:
            if isinstance(node, L.Limit):
                limit = node
            elif isinstance(node, L.Sort):
                sort = node
            elif isinstance(node, L.Project):
                project = node
            elif isinstance(node, L.Having):
                having = node
            elif isinstance(node, L.Aggregate):
                agg = node
            elif isinstance(node, L.Filter) and not node.pushed:
                where = node
            else:
                break
            node = node.child
        assert project is not None
        self.names = project.names
        items = ", ".join(f"{self.expr(e)} AS c{k}" for k, e in enumerate(project.items))
        sql = f"SELECT {items}\nFROM {self._from(node)}"
        if where is not None:
            sql += f"\nWHERE {self.expr(where.predicate)}"
        if agg is not None and agg.group_by:
            sql += "\nGROUP BY " + ", ".join(self.expr(g) for g in agg.group_by)
        if having is not None:
            sql += f"\nHAVING {self.expr(having.predicate)}"
        if sort is not None:
            keys = [f"{self.expr(e)}{' DESC' if d else ''}" for e, d in sort.keys]
            sql += "\nORDER BY " + ", ".join(k + " NULLS LAST" for k in keys)
        elif agg is not None:
            sql += "\nORDER BY ALL"
        else:  # a deterministic order: by asset, position, id, source by source
            keys = [
                f't{s.index}."asset", t{s.index}."index", t{s.index}.id' for s in self.plan.sources
            ]
            sql += "\nORDER BY " + ", ".join(keys)
        if limit is not None:
            sql += f"\nLIMIT {self.bind(limit.limit)} OFFSET {self.bind(limit.offset)}"
        return sql

    def _from(self, node: L.PlanNode) -> str:
        if isinstance(node, L.SpanJoin):
            return f"{self._from(node.left)} JOIN {self._from(node.right)} ON {self.expr(node.on)}"
        while not isinstance(node, L.EntityScan):
            node = node.child  # type: ignore[attr-defined]
        return f"t{node.source}"

    # -- expressions --------------------------------------------------------------------------
    def expr(self, e: Any) -> str:  # noqa: C901 - one branch per node type
        if isinstance(e, L.ColumnValue):
            return f't{e.source}."{e.name}"'
        if isinstance(e, L.FeatureValue):
            return f"t{self.plan.features[e.slot].source}.v{e.slot}"
        if isinstance(e, L.AliasValue):
            return f"c{e.index}"
        if isinstance(e, (A.String, A.Number)):
            return self.bind(e.value)
        if isinstance(e, A.Bool):
            return "TRUE" if e.value else "FALSE"
        if isinstance(e, A.Null):
            return "NULL"
        if isinstance(e, A.TimeLit):
            return self.bind(e.seconds)
        if isinstance(e, A.FrameLit):
            return self.bind(e.n)
        if isinstance(e, A.Star):
            return "*"
        if isinstance(e, A.BinaryOp):
            return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"
        if isinstance(e, A.UnaryOp):
            op = "NOT " if e.op == "NOT" else "-"
            return f"({op}{self.expr(e.operand)})"
        if isinstance(e, A.Compare):
            return f"({self._side(e.left, e.right)} {e.op} {self._side(e.right, e.left)})"
        if isinstance(e, A.Between):
            x = self.expr(e.expr)
            lo, hi = self._side(e.low, e.expr), self._side(e.high, e.expr)
            return f"({x} {'NOT ' if e.negated else ''}BETWEEN {lo} AND {hi})"
        if isinstance(e, A.InList):
            items = ", ".join(self._side(i, e.expr) for i in e.items)
            return f"({self.expr(e.expr)} {'NOT ' if e.negated else ''}IN ({items}))"
        if isinstance(e, A.Like):
            return f"({self.expr(e.expr)} {'NOT ' if e.negated else ''}LIKE {self.expr(e.pattern)})"
        if isinstance(e, A.IsNull):
            return f"({self.expr(e.expr)} IS {'NOT ' if e.negated else ''}NULL)"
        if isinstance(e, A.Call):
            args = ", ".join(self.expr(a) for a in e.args)
            return f"{SQL_FUNCTIONS[e.name]}({args})"
        if isinstance(e, A.SpanPredicate):
            return self._span(e)
        raise AqlError(f"cannot compile {type(e).__name__}")

    def _side(self, e: Any, other: Any) -> str:
        """A frame literal compared with a time column becomes seconds at the asset's rate."""
        if (
            isinstance(e, A.FrameLit)
            and isinstance(other, L.ColumnValue)
            and other.name in TIME_COLUMNS
        ):
            return f"({self.bind(e.n)} * t{other.source}._spf)"
        return self.expr(e)

    def _span(self, e: A.SpanPredicate) -> str:
        frames = any(
            isinstance(x, A.SpanLit) and isinstance(x.start, A.FrameLit) for x in (e.left, e.right)
        )
        (ls, le), (rs, re) = self._ends(e.left, frames), self._ends(e.right, frames)
        cond = {
            "DURING": f"{ls} >= {rs} AND {le} <= {re}",
            "CONTAINS": f"{ls} <= {rs} AND {le} >= {re}",
            "OVERLAPS": f"{ls} < {re} AND {rs} < {le}",
            "BEFORE": f"{le} <= {rs}",
            "AFTER": f"{ls} >= {re}",
        }[e.op]
        if isinstance(e.left, A.SpanRef) and isinstance(e.right, A.SpanRef):
            a, b = self._alias(e.left.name), self._alias(e.right.name)
            cond = f"t{a}.asset_id = t{b}.asset_id AND {cond}"
        return f"({cond})"

    def _alias(self, name: str) -> int:
        return next(s.index for s in self.plan.sources if s.alias == name)

    def _ends(self, x: A.SpanRef | A.SpanLit, frames: bool) -> tuple[str, str]:
        if isinstance(x, A.SpanRef):
            i = self._alias(x.name)
            if frames:
                return f"t{i}.start_frame", f"t{i}.end_frame"
            return f"t{i}.start_s", f"t{i}.end_s"
        kinds = {type(x.start), type(x.end)}
        if A.FrameLit in kinds and kinds != {A.FrameLit}:
            raise AqlTypeError("a span literal mixes frames and times: use one kind")
        vals = []
        for end in (x.start, x.end):
            v = end.n if isinstance(end, A.FrameLit) else getattr(end, "seconds", None)
            vals.append(self.bind(end.value if isinstance(end, A.Number) else v))
        return vals[0], vals[1]


def feature_files(store: Store, plan: L.SelectPlan, con) -> dict[int, list[str]]:
    """The committed memo files of every feature use, listed in the reading transaction."""
    out = {}
    for use in plan.features:
        spec = store.registry.get(use.name, use.version)
        out[use.slot] = store.memo.files(memo_key(spec, dict(use.params)), con)
    return out

"""The DuckDB SQL that runs a SELECT plan.

Every source ``i`` becomes CTE ``s{i}`` (its entity table with the pushed filters) and ``t{i}``
(those entities LEFT JOINed to the values of its features, read with ``read_parquet`` from the
committed memo files). Literals are DuckDB parameters (``$p0``...); identifiers in the SQL are
generated (``t0``, ``v1``, ``c2``) or fixed column names checked at planning time, so no user
text is ever spliced into SQL. Result columns are renamed afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from amberlite.core.ids import frame_id_sql, frame_ref_sql, span_ref_sql
from amberlite.errors import AqlError, AqlTypeError
from amberlite.plan import logical as L
from amberlite.plan.build import TIME_COLUMNS
from amberlite.syntax import ast as A

if TYPE_CHECKING:
    import pyarrow as pa

    from amberlite.context import StoreContext

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


def _area(b: str) -> str:
    return f"(({b})[3] - ({b})[1]) * (({b})[4] - ({b})[2])"


def _iou(a: str, b: str) -> str:
    inter = (
        f"greatest(0, least(({a})[3], ({b})[3]) - greatest(({a})[1], ({b})[1])) * "
        f"greatest(0, least(({a})[4], ({b})[4]) - greatest(({a})[2], ({b})[2]))"
    )
    return f"({inter}) / NULLIF({_area(a)} + {_area(b)} - ({inter}), 0)"


# Region functions of boxes (DOUBLE[] of x0, y0, x1, y1; DuckDB lists count from 1).
REGION_SQL: dict[str, Callable[..., str]] = {
    "area": _area,
    "iou": _iou,
    "box": lambda *xs: f"([{', '.join(xs)}]::DOUBLE[])",
}


# The error kind DuckDB puts first, and the names the compiled SQL uses (see the docstring).
_DUCK_KIND = re.compile(r"^\s*(?:[A-Za-z]+ )+Error:\s*")
_GENERATED_QUALIFIED = re.compile(r'\b(t\d+)\."?([A-Za-z_][A-Za-z0-9_]*)"?')
_GENERATED = re.compile(r"\$p\d+|\b[pvcstf]\d+\b")


class Sql:
    """Compiles a SELECT plan to one DuckDB statement with named parameters."""

    def __init__(self, ctx: StoreContext, plan: L.SelectPlan, nearest: Any = None) -> None:
        self.ctx = ctx
        self.plan = plan
        self.nearest = nearest
        self.params: dict[str, Any] = {}
        self.tables: dict[str, pa.Table] = {}
        self.names: tuple[str, ...] = ()
        self.labels: dict[str, str] = {}  # generated name -> the user's text (error messages)
        self.con: duckdb.DuckDBPyConnection | None = None  # the connection it runs on
        self.con_catalog: Any = None  # ``con`` when it is a catalog connection, else None
        self.explain: list[str] = []  # how each annotation set and text search is read
        self.dry = False  # EXPLAIN: describe annotation sets, search nothing

    def bind(self, value: Any) -> str:
        # One parameter per distinct scalar: ``index % 2`` or ``bucket(a, 1.0)`` in the select
        # list and in GROUP BY must compile to the same expression for DuckDB to group by it.
        if isinstance(value, (bool, int, float, str)):
            for k, v in self.params.items():
                if type(v) is type(value) and v == value:
                    return f"${k}"
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def user_message(self, message: str) -> str:
        """A DuckDB error message in the user's terms: its first line, without the error kind,
        the generated names (``t0.v1``, ``c2``, ``$p3``) replaced by what the query said."""
        text = message.strip().splitlines()[0] if message.strip() else "error"
        text = _DUCK_KIND.sub("", text)
        names = {f"c{k}": n for k, n in enumerate(self.names)}
        names.update(self.labels)
        for s in self.plan.sources:
            names.setdefault(f"t{s.index}", s.alias)
            names.setdefault(f"s{s.index}", s.alias)
        for use in self.plan.features:
            names.setdefault(f"v{use.slot}", use.name)
            names.setdefault(f"f{use.slot}", use.name)

        def sub(m: re.Match[str]) -> str:
            token = m.group(0)
            if token.startswith("$") or token in self.params:
                value = self.params.get(token.lstrip("$"))
                return repr(value) if not isinstance(value, list) else "(a list)"
            return names.get(token, "(an expression)")

        text = _GENERATED_QUALIFIED.sub(lambda m: names.get(m.group(2), m.group(2)), text)
        return _GENERATED.sub(sub, text).replace('"', "")

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
        if src.annotation is not None:
            body = self._annotation_body(src, scope)
        elif src.entity_type == "asset":
            body = f"""SELECT a.asset_id AS id, a.alias AS ref, a.alias AS asset, a.asset_id,
                0 AS "index",
                0::BIGINT AS start_frame, a.frame_count AS end_frame, 0.0::DOUBLE AS start_s,
                a.duration_s AS end_s, a.alias, a.path, a.width, a.height, a.frame_count,
                a.duration_s, a.fps_num::DOUBLE / a.fps_den AS fps, {spf}
                FROM assets a WHERE {scope}"""
        elif src.entity_type == "frame":
            table = f"_frames{i}"
            self.tables[table] = self._frames(src)
            body = f"""SELECT {frame_id_sql("x.asset_id", "x.n")} AS id,
                {frame_ref_sql("a.alias", "x.n")} AS ref, a.alias AS asset, x.asset_id,
                x.n AS "index", x.n AS start_frame, x.n + 1 AS end_frame, x.t AS start_s,
                x.t_end AS end_s, x.n, x.t, {spf}
                FROM {table} x JOIN assets a ON a.asset_id = x.asset_id WHERE {scope}"""
        else:
            producer = source_segmentation(self.ctx, src).label
            body = f"""SELECT e.entity_id AS id, {span_ref_sql("a.alias", "e.idx")} AS ref,
                a.alias AS asset, e.asset_id, e.idx AS "index",
                e.start_frame, e.end_frame, e.start_s, e.end_s, {spf}
                FROM entities e JOIN assets a ON a.asset_id = e.asset_id
                WHERE e.entity_type = {self.bind(src.entity_type)}
                AND e.producer = {self.bind(producer)} AND {scope}"""
        if self.plan.nearest is not None and self.plan.nearest.source == i:
            body = (
                self._nearest_join(body) if src.annotation is None else self._nearest_vectors(body)
            )
        width = dict(self.plan.buckets).get(i)
        if width is not None:
            body = self._buckets(body, width)
        if pushed is None:
            return body
        return f"SELECT * FROM ({body}) AS t{i} WHERE {self.expr(pushed)}"

    def _annotation_body(self, src: L.Source, scope: str) -> str:
        """An annotation set: human rows and current model runs (amberlite.annotations.read),
        with frame numbers at the asset's rate and the ``relevance`` of its MATCHES."""
        from amberlite.annotations.read import type_view, view_sql

        view = type_view(self.ctx.catalog, self.ctx.root, src.annotation, self.con_catalog)
        human, assets = f"_human{src.index}", "_assets"
        self.tables[human], self.tables[assets] = view.human, view.assets
        body = view_sql(view, human, assets, scope, self.bind)
        runs = view.runs
        self.explain.append(
            f"annotations({src.annotation}) AS {src.alias}: {view.human.num_rows} by people "
            f"(catalog), {len(runs)} model run(s) (Parquet: "
            + (", ".join(f"{r.annotator}@{r.version} run {r.run_id}" for r in runs) or "none")
            + ")"
        )
        relevance, joins = [], ""
        required = required_searches(self.plan.root)
        for k, t in enumerate(self.plan.searches):
            if t.source == src.index:
                self.tables[f"_search{k}"] = self._search(src, t, view)
                relevance.append(f"m{k}.relevance")
                # A MATCHES the WHERE requires (a conjunct) keeps only the rows found: an inner
                # join, so DuckDB reads the few found rows, not every row, past the join.
                kind = "JOIN" if k in required else "LEFT JOIN"
                joins += f" {kind} _search{k} AS m{k} ON m{k}.id = x.id"
        if not relevance:
            rel = "NULL::DOUBLE"
        elif len(relevance) == 1:
            rel = relevance[0]
        else:  # several MATCHES on one set: the sum of the scores of those that matched
            rel = (
                f"CASE WHEN coalesce({', '.join(relevance)}) IS NOT NULL THEN "
                + " + ".join(f"coalesce({r}, 0)" for r in relevance)
                + " END"
            )
        return f"""SELECT x.*, x.id AS ref, floor(x.start_s / x._spf)::BIGINT AS start_frame,
            ceil(x.end_s / x._spf)::BIGINT AS end_frame, {rel} AS relevance
            FROM ({body}) AS x{joins}"""

    def _buckets(self, body: str, width: float) -> str:
        """``body`` with one row per entity and ``width``-second bucket its span meets: the
        buckets ``k`` with ``k * width < end_s`` and ``(k + 1) * width > start_s`` (a span of
        no length: the bucket of its start). Column ``_bucket``; ratios are rounded to 1e-9
        first, so 0.3 / 0.1 is bucket 3, not 2.9999999999999996."""
        w = self.bind(float(width))
        lo = f"floor(round(b.start_s / {w}, 9))::BIGINT"
        hi = f"greatest({lo}, ceil(round(b.end_s / {w}, 9))::BIGINT - 1)"
        return f"SELECT b.*, unnest(generate_series({lo}, {hi})) AS _bucket FROM ({body}) AS b"

    def _nearest_vectors(self, body: str) -> str:
        """The k annotations of ``body`` whose vectors are most similar (cosine) to the
        target's, with their ``score``; the target itself is left out."""
        near = self.plan.nearest
        assert near is not None and self.con is not None
        target, k = self.bind(near.target_id), self.bind(near.k)
        self.register(self.con)  # the annotation views the body reads
        found = self.con.execute(
            f"SELECT count(*) FROM ({body}) WHERE id = {target} AND vector IS NOT NULL",
            {p: self.params[p] for p in set(re.findall(r"\$(p\d+)\b", body + target))},
        ).fetchall()[0][0]
        if not found:
            raise AqlError(
                f"NEAREST TO annotation {near.target_id!r}: no annotation of the set has that "
                "id and a vector"
            )
        return f"""SELECT b.*, array_cosine_similarity(b.vector, q.v) AS score
            FROM ({body}) AS b, (SELECT vector AS v FROM ({body}) WHERE id = {target}) AS q
            WHERE b.id <> {target} AND b.vector IS NOT NULL
            ORDER BY score DESC, b.id LIMIT {k}"""

    def _search(self, src: L.Source, t: L.TextSearch, view: Any) -> pa.Table:
        """(id, relevance) of the type's annotations whose ``t.column`` holds every word: the
        type's index of that column (all its live rows, whatever the query's scope), built on
        first use from the rows in view."""
        from amberlite.annotations.read import view_sql
        from amberlite.annotations.search import ensure_index, index_dir, search, search_empty

        folder = index_dir(self.ctx.root, src.annotation, t.column, view.stamp)
        ready = (folder / "READY").exists()
        state = "ready" if ready else "to build from the rows above"
        self.explain.append(f"text search: {t.describe(src.alias)}; index {state}")
        if self.dry or (not view.runs and not view.human.num_rows):
            return search_empty()  # EXPLAIN builds and searches nothing; nor does an empty type

        def rows() -> list[tuple[str, str]]:
            from amberlite.annotations.read import engine

            params: dict[str, Any] = {}

            def bind(value: Any) -> str:
                params[f"q{len(params)}"] = value
                return f"$q{len(params) - 1}"

            body = view_sql(view, "_human", "_assets", "TRUE", bind)
            con = engine()
            try:
                con.register("_human", view.human)
                con.register("_assets", view.assets)
                sql = f"SELECT id, {t.column} FROM ({body}) WHERE {t.column} IS NOT NULL"
                return con.execute(sql, params).fetchall()
            finally:
                con.close()

        ensure_index(folder, rows)
        return search(folder, t.query)

    def _nearest_join(self, body: str) -> str:
        """The entities of ``body`` that the NEAREST search found, with their ``score``."""
        if self.nearest is None:
            raise AqlError("NEAREST: the search has not run (internal error)")
        from amberlite.search.nearest import search_table

        self.tables["_nearest"] = search_table(self.nearest)
        return f"SELECT b.*, n.score FROM ({body}) AS b JOIN _nearest AS n ON n.entity_id = b.id"

    def _frames(self, src: L.Source) -> pa.Table:
        """(asset_id, n, t, t_end) of every frame in scope, times from the exact frame index."""
        import numpy as np
        import pyarrow as pa

        from amberlite.core.entities import cached_frame_index

        parts: dict[str, list[pa.Array]] = {"asset_id": [], "n": [], "t": [], "t_end": []}
        for rec in self.ctx.asset_records(src.asset_ids):
            sec = np.asarray(cached_frame_index(self.ctx.media_cache, rec).seconds)
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
        cast = self.ctx.schema().get(use.name, use.version).duck_cast
        value = f"value::{cast}" if cast else "value"
        if not files:
            return "SELECT NULL::TEXT AS k, NULL AS v WHERE false"
        return f"SELECT entity_id AS k, {value} AS v FROM read_parquet({self.bind(files)})"

    # -- the statement ------------------------------------------------------------------------
    def select(self, files: dict[int, list[str]]) -> str:
        plan = self.plan
        pushed = L.pushed_filters(plan.root)
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
                f't{s.index}."asset", t{s.index}.'
                + ("start_s" if s.annotation is not None else '"index"')
                + f", t{s.index}.id"
                for s in self.plan.sources
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
            self.labels[f"v{e.slot}"] = e.label
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
            right = self.expr(e.right)
            if e.op in ("/", "%"):  # dividing by zero is NULL, never a run-time error
                right = f"NULLIF({right}, 0)"
            return f"({self.expr(e.left)} {e.op} {right})"
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
        if isinstance(e, A.Call) and e.name == "bucket":  # see SelectPlan.buckets
            return f"t{e.args[0].source}._bucket"
        if isinstance(e, A.Call) and e.name in REGION_SQL:
            return REGION_SQL[e.name](*[self.expr(a) for a in e.args])
        if isinstance(e, A.Call):
            parts = [self.expr(a) for a in e.args]
            if e.name == "round" and len(parts) == 2:  # DuckDB wants INTEGER decimals
                parts[1] = f"TRY_CAST(trunc({parts[1]}) AS INTEGER)"
            args = ("DISTINCT " if e.distinct else "") + ", ".join(parts)
            return f"{SQL_FUNCTIONS[e.name]}({args})"
        if isinstance(e, A.SpanPredicate):
            return self._span(e)
        if isinstance(e, L.MatchesValue):
            t = self.plan.searches[e.index]
            return f"(t{t.source}.id IN (SELECT id FROM _search{e.index}))"
        if isinstance(e, L.RegionPredicate):
            a, b = f"({self.expr(e.left)})", f"({self.expr(e.right)})"
            if e.op == "CONTAINS":
                a, b = b, a
            if e.op in ("INSIDE", "CONTAINS"):
                return (f"({a}[1] >= {b}[1] AND {a}[2] >= {b}[2] AND {a}[3] <= {b}[3] "
                        f"AND {a}[4] <= {b}[4])")  # fmt: skip
            return f"({a}[1] < {b}[3] AND {b}[1] < {a}[3] AND {a}[2] < {b}[4] AND {b}[2] < {a}[4])"
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
        # Only the ends that the predicate uses are bound: DuckDB refuses unused parameters
        # (BEFORE and AFTER read one end of each span).
        (ls, le), (rs, re) = self._ends(e.left, frames), self._ends(e.right, frames)
        template = {
            "DURING": "{ls} >= {rs} AND {le} <= {re}",
            "CONTAINS": "{ls} <= {rs} AND {le} >= {re}",
            "OVERLAPS": "{ls} < {re} AND {rs} < {le}",
            "BEFORE": "{le} <= {rs}",
            "AFTER": "{ls} >= {re}",
        }[e.op]
        ends = {"ls": ls, "le": le, "rs": rs, "re": re}
        used = {k: ends[k]() for k in ("ls", "le", "rs", "re") if "{" + k + "}" in template}
        cond = template.format(**used)
        if isinstance(e.left, A.SpanRef) and isinstance(e.right, A.SpanRef):
            a, b = self._alias(e.left.name), self._alias(e.right.name)
            cond = f"t{a}.asset_id = t{b}.asset_id AND {cond}"
        return f"({cond})"

    def _alias(self, name: str) -> int:
        return next(s.index for s in self.plan.sources if s.alias == name)

    def _ends(
        self, x: A.SpanRef | A.SpanLit, frames: bool
    ) -> tuple[Callable[[], str], Callable[[], str]]:
        """The SQL of a span's start and end, each made (and its literal bound) on demand."""
        if isinstance(x, A.SpanRef):
            i = self._alias(x.name)
            if frames:
                return (lambda: f"t{i}.start_frame"), (lambda: f"t{i}.end_frame")
            return (lambda: f"t{i}.start_s"), (lambda: f"t{i}.end_s")
        kinds = {type(x.start), type(x.end)}
        if A.FrameLit in kinds and kinds != {A.FrameLit}:
            raise AqlTypeError("a span literal mixes frames and times: use one kind")
        vals = []
        for end in (x.start, x.end):
            v = end.n if isinstance(end, A.FrameLit) else getattr(end, "seconds", None)
            vals.append(end.value if isinstance(end, A.Number) else v)
        return (lambda: self.bind(vals[0])), (lambda: self.bind(vals[1]))


def required_searches(node: L.PlanNode) -> set[int]:
    """The text searches (indexes into ``plan.searches``) that a WHERE requires: a MATCHES
    that is the predicate or one of its top-level AND terms (not under OR or NOT)."""
    out: set[int] = set()

    def terms(e: A.Expr) -> None:
        if isinstance(e, A.BinaryOp) and e.op == "AND":
            terms(e.left)
            terms(e.right)
        elif isinstance(e, L.MatchesValue):
            out.add(e.index)

    while node is not None:
        if isinstance(node, L.Filter):
            terms(node.predicate)
        for attr in ("left", "right"):
            side = getattr(node, attr, None)
            if side is not None:
                out |= required_searches(side)
        node = getattr(node, "child", None)
    return out


def source_segmentation(ctx: StoreContext, src: L.Source) -> Any:
    """The Segmentation of a span source: its USING, else the store's."""
    using = None
    if src.using is not None:
        name, version, params = src.using
        using = (name, version, dict(params))
    return ctx.segmentation(src.entity_type, using)

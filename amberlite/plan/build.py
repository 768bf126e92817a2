"""AST -> logical plan: resolve names against a :class:`PlanSchema` (a value, not a store),
check types, build the node tree.

Name resolution, in order, for a bare name ``x`` (or ``s.x``) in an expression:

1. an entity column of the source (``id``, ``asset``, ``start_s``, ... and the extra columns
   of the entity set: ``alias``, ``width`` ... for assets, ``n``, ``t`` for frames);
2. in ORDER BY and HAVING, an alias of the select list;
3. a feature of the registry (newest version unless ``@v``), over the source's entity type
   or over ``asset`` (then broadcast to every entity of the asset).

With ``NEAREST`` the FROM set also has the column ``score`` (the similarity to the target).

Unknown names raise :class:`ResolveError` with the closest candidate; operands of the wrong
type raise :class:`AqlTypeError` naming the operand. Nothing here reads values or computes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from amberlite.errors import AqlError, AqlTypeError, ResolveError
from amberlite.library.match_types import resolve_match_type
from amberlite.plan import logical as L
from amberlite.plan.schema import PlanSchema
from amberlite.syntax import ast as A
from amberlite.syntax.printer import to_aql

BASE_COLUMNS: dict[str, str] = {
    "id": "str",
    "ref": "str",
    "asset": "str",
    "asset_id": "str",
    "index": "num",
    "start_frame": "num",
    "end_frame": "num",
    "start_s": "num",
    "end_s": "num",
}
EXTRA_COLUMNS: dict[str, dict[str, str]] = {
    "asset": {
        "alias": "str",
        "path": "str",
        "width": "num",
        "height": "num",
        "frame_count": "num",
        "duration_s": "num",
        "fps": "num",
    },
    "frame": {"n": "num", "t": "num"},
}
ANNOTATION_COLUMNS: dict[str, str] = {
    "id": "str",
    "ref": "str",
    "asset": "str",
    "asset_id": "str",
    "start_frame": "num",
    "end_frame": "num",
    "start_s": "num",
    "end_s": "num",
    "label": "str",
    "confidence": "num",
    "text": "str",
    "box": "box",
    "polygon": "other",
    "author": "str",
    "relevance": "num",  # of its MATCHES (NULL without one)
}
# name: (argument types, result type); bucket's first argument is an entity set alias
REGION_FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "area": (("box",), "num"),
    "iou": (("box", "box"), "num"),
    "box": (("num", "num", "num", "num"), "box"),
    "bucket": (("span", "num"), "num"),
}
TIME_COLUMNS = frozenset({"start_s", "end_s", "t", "duration_s"})
SCORE = "score"  # the similarity column of a NEAREST source
EF_RANGE = (1, 100_000)
AGGREGATES = frozenset({"count", "min", "max", "avg", "sum"})
SCALAR_FUNCTIONS: dict[str, tuple[int, int, str | None]] = {
    # name: (min args, max args, result type; None = type of the first argument)
    "abs": (1, 1, "num"),
    "round": (1, 2, "num"),
    "floor": (1, 1, "num"),
    "ceil": (1, 1, "num"),
    "sqrt": (1, 1, "num"),
    "least": (1, 16, None),
    "greatest": (1, 16, None),
    "coalesce": (1, 16, None),
    "lower": (1, 1, "str"),
    "upper": (1, 1, "str"),
    "length": (1, 1, "num"),
}
SCALAR_TYPES = frozenset({"num", "str", "bool", "null"})  # "box": a region, [x0, y0, x1, y1]
# round(x, d): |d| beyond this changes nothing (a double has ~17 significant digits).
MAX_ROUND_DIGITS = 400


def _constant_number(e: Any) -> float | None:
    """The value of a number literal, or of a negated one; None for anything else."""
    if isinstance(e, A.Number):
        return float(e.value)
    if isinstance(e, A.UnaryOp) and e.op == "-" and isinstance(e.operand, A.Number):
        return -float(e.operand.value)
    return None


def columns_of(entity_type: str) -> dict[str, str]:
    """Column name -> type of an entity set."""
    return {**BASE_COLUMNS, **EXTRA_COLUMNS.get(entity_type, {})}


def literal_value(lit: A.Literal) -> Any:
    """The Python value of a scalar literal (times in seconds, frames as numbers)."""
    if isinstance(lit, (A.String, A.Number, A.Bool)):
        return lit.value
    if isinstance(lit, A.TimeLit):
        return lit.seconds
    if isinstance(lit, A.FrameLit):
        return lit.n
    return None


_USING_SEARCH = (
    "{} searches the store's segmentation: USING is not supported here (choose the store's "
    "with `amberlite segmenter shot NAME`)"
)


def make_source(schema: PlanSchema, es: A.EntitySet, index: int) -> L.Source:
    ids = labels = None
    if es.of:
        ids = schema.resolve_assets(es.of)
        labels = tuple(dict.fromkeys(es.of))
    if es.name == "annotations" or es.arg is not None:
        if es.name != "annotations" or es.arg is None:
            raise AqlError(
                f"{es.name}(...): only annotations take an argument, as annotations('<type>')"
                if es.arg is not None
                else "annotations need their type: FROM annotations('<type>') a"
            )
        if es.using is not None:
            raise AqlError("USING names a segmenter: annotations are not segmented")
        schema.annotation_columns(es.arg)  # an unknown type fails here
        return L.Source(index, es.alias or es.name, "annotation", ids, labels, es.arg)
    etype = schema.entity_type_of(es.name)
    if etype not in ("asset", "frame") and schema.producer_of(etype) is None:
        raise ResolveError(f"no segmenter produces entity type {etype!r}")
    using = None
    if es.using is not None:
        if etype in ("asset", "frame"):
            raise ResolveError(f"USING names a segmenter: {es.name} are not segmented")
        u = es.using
        seg = schema.registry.segmenter(etype, u.name, u.version)
        given = {k: literal_value(v) for k, v in u.params}
        seg.resolve_params(given)  # unknown parameter names are an error here
        using = (u.name, u.version, tuple(sorted(given.items())))
    return L.Source(index, es.alias or es.name, etype, ids, labels, using=using)


def feature_use(
    schema: PlanSchema, ref: A.FeatureRef, source: L.Source, slot: int, entity_ok: bool = True
) -> L.FeatureUse:
    spec = schema.feature(ref.name, ref.version)
    given = {k: literal_value(v) for k, v in ref.params}
    resolved = spec.resolve_params(given)
    if entity_ok and spec.entity not in (source.entity_type, "asset"):
        raise AqlTypeError(
            f"feature {spec.key} is over {spec.entity!r} entities; {source.alias!r} holds "
            f"{source.entity_type!r} entities"
        )
    return L.FeatureUse(
        slot=slot,
        source=source.index,
        name=spec.name,
        version=spec.version,
        params=tuple(sorted((k, v) for k, v in given.items() if k in resolved)),
        entity=spec.entity,
        output=spec.output_type,
        type=spec.kind,
        by_asset=spec.entity == "asset" and source.entity_type != "asset",
    )


class Builder:
    """Resolves one SELECT; holds its sources and feature uses while it walks the AST."""

    def __init__(self, schema: PlanSchema, sel: A.Select) -> None:
        self.schema = schema
        self.sel = sel
        sets = [sel.source] + [j.entity_set for j in sel.joins]
        self.sources = [make_source(schema, es, i) for i, es in enumerate(sets)]
        aliases = [s.alias for s in self.sources]
        dup = {a for a in aliases if aliases.count(a) > 1}
        if dup:
            raise AqlError(f"entity set alias {sorted(dup)[0]!r} is used twice: name each one")
        self.features: list[L.FeatureUse] = []
        self.aliases: dict[str, int] = {}
        self.alias_types: dict[str, str] = {}
        self.nearest_source = 0 if sel.nearest is not None else None
        self.searches: list[L.TextSearch] = []
        self.buckets: dict[int, float] = {}  # source index -> its bucket(<alias>, w) width
        if sel.nearest is not None and self.sources[0].using is not None:
            raise AqlError(_USING_SEARCH.format("NEAREST"))

    def columns(self, src: L.Source) -> dict[str, str]:
        """Column name -> type of a source (``score`` on the source of a NEAREST)."""
        if src.annotation is not None:
            cols = {**ANNOTATION_COLUMNS, **self.schema.annotation_columns(src.annotation)}
        else:
            cols = columns_of(src.entity_type)
        return {**cols, SCORE: "num"} if src.index == self.nearest_source else cols

    # -- names --------------------------------------------------------------------------------
    def source(self, qualifier: str | None, name: str, feature: A.FeatureRef | None = None):
        if qualifier is not None:
            for s in self.sources:
                if s.alias == qualifier:
                    return s
            raise ResolveError(
                f"unknown entity set alias {qualifier!r}",
                name=qualifier,
                candidates=[s.alias for s in self.sources],
            )
        if len(self.sources) == 1:
            return self.sources[0]
        if feature is not None:
            spec = self.schema.feature(feature.name, feature.version)
            fits = [s for s in self.sources if s.entity_type == spec.entity]
            if len(fits) == 1:
                return fits[0]
        raise AqlError(
            f"{name!r} is ambiguous with several entity sets: qualify it "
            f"({', '.join(s.alias + '.' + name for s in self.sources)})"
        )

    def column(self, qualifier: str | None, name: str) -> L.ColumnValue:
        if qualifier is None and name == SCORE and self.nearest_source is not None:
            src = self.sources[self.nearest_source]
        else:
            src = self.source(qualifier, name)
        cols = self.columns(src)
        if name not in cols:
            raise ResolveError(
                f"{src.alias!r} ({src.entity_type}) has no column {name!r}",
                name=name,
                candidates=cols,
            )
        label = f"{qualifier}.{name}" if qualifier else name
        return L.ColumnValue(src.index, name, cols[name], label)

    def feature(self, ref: A.FeatureRef, allow_alias: bool) -> A.Expr:
        plain = ref.version is None and not ref.params
        if plain and allow_alias and ref.qualifier is None and ref.name in self.aliases:
            name = ref.name
            return L.AliasValue(self.aliases[name], name, self.alias_types[name])
        if plain:
            src_cols = [
                s
                for s in self.sources
                if (ref.qualifier in (None, s.alias)) and ref.name in self.columns(s)
            ]
            if src_cols:
                return self.column(ref.qualifier, ref.name)
        if ref.name not in self.schema.registry.names():
            cands = list(self.schema.registry.names())
            for s in self.sources:
                cands += list(self.columns(s))
            cands += list(self.aliases) if allow_alias else []
            raise ResolveError(f"unknown feature {ref.name!r}", name=ref.name, candidates=cands)
        src = self.source(ref.qualifier, ref.name, ref)
        use = feature_use(self.schema, ref, src, len(self.features))
        for u in self.features:
            if (u.source, u.name, u.version, u.params) == (
                use.source,
                use.name,
                use.version,
                use.params,
            ):
                use = u
                break
        else:
            self.features.append(use)
        return L.FeatureValue(use.slot, use.type, to_aql(ref))

    # -- expressions --------------------------------------------------------------------------
    def expr(self, e: A.Expr, *, allow_alias: bool = False, allow_agg: bool = False) -> A.Expr:
        """Resolve names in ``e`` and check its types; returns the resolved expression."""
        r = self._expr(e, allow_alias, allow_agg)
        self.type_of(r)
        return r

    def _expr(self, e: Any, aa: bool, ag: bool) -> Any:  # noqa: C901 - one branch per node
        if isinstance(e, A.Column):
            return self.column(e.qualifier, e.name)
        if isinstance(e, A.FeatureRef):
            return self.feature(e, aa)
        if isinstance(e, A.Placeholder):
            raise AqlError(f"no value for ${e.name}: pass it in params")
        if isinstance(e, (A.Literal, A.Star, A.SpanLit)):
            return e
        if isinstance(e, A.SpanRef):
            if e.name not in [s.alias for s in self.sources]:
                raise ResolveError(
                    f"unknown entity set alias {e.name!r}",
                    name=e.name,
                    candidates=[s.alias for s in self.sources],
                )
            return e
        if isinstance(e, A.Matches):
            return self._matches(e, aa, ag)
        if isinstance(e, A.SpanPredicate) and not isinstance(e.left, (A.SpanRef, A.SpanLit)):
            return L.RegionPredicate(e.op, self._expr(e.left, aa, ag), self._expr(e.right, aa, ag))
        if isinstance(e, A.Call) and e.name == "bucket":
            return self._bucket(e, aa, ag)
        if isinstance(e, A.Call):
            if e.name in AGGREGATES:
                if not ag:
                    raise AqlError(f"aggregate {e.name}() is not allowed here")
                inner = tuple(self._expr(a, aa, False) for a in e.args)
            else:
                inner = tuple(self._expr(a, aa, ag) for a in e.args)
            if e.distinct and e.name not in AGGREGATES:
                raise AqlError(f"DISTINCT is only allowed in an aggregate, not in {e.name}()")
            return A.Call(e.name, inner, e.distinct)
        if isinstance(e, A.BinaryOp):
            return A.BinaryOp(e.op, self._expr(e.left, aa, ag), self._expr(e.right, aa, ag))
        if isinstance(e, A.Compare):
            return A.Compare(e.op, self._expr(e.left, aa, ag), self._expr(e.right, aa, ag))
        if isinstance(e, A.UnaryOp):
            return A.UnaryOp(e.op, self._expr(e.operand, aa, ag))
        if isinstance(e, A.InList):
            items = tuple(self._expr(i, aa, ag) for i in e.items)
            return A.InList(self._expr(e.expr, aa, ag), items, e.negated)
        if isinstance(e, A.Like):
            return A.Like(self._expr(e.expr, aa, ag), self._expr(e.pattern, aa, ag), e.negated)
        if isinstance(e, A.IsNull):
            return A.IsNull(self._expr(e.expr, aa, ag), e.negated)
        if isinstance(e, A.Between):
            return A.Between(
                self._expr(e.expr, aa, ag),
                self._expr(e.low, aa, ag),
                self._expr(e.high, aa, ag),
                e.negated,
            )
        if isinstance(e, A.SpanPredicate):
            return A.SpanPredicate(e.op, self._expr(e.left, aa, ag), self._expr(e.right, aa, ag))
        raise AqlError(f"unsupported expression {type(e).__name__}")

    def _matches(self, e: A.Matches, aa: bool, ag: bool) -> L.MatchesValue:
        col = self._expr(e.expr, aa, ag)
        src = self.sources[col.source] if isinstance(col, L.ColumnValue) else None
        if src is None or src.annotation is None or col.type != "str":
            raise AqlTypeError(
                f"MATCHES searches a text column of an annotation set (a.text, a.label), "
                f"not {L.show_expr(col)}"
            )
        query = e.query.value if isinstance(e.query, A.String) else e.query
        if isinstance(query, A.Placeholder):
            raise AqlError(f"no value for ${query.name}: pass it in params")
        if not isinstance(query, str):
            raise AqlTypeError(
                f"MATCHES takes words: a string or a $parameter bound to one, not "
                f"{L.show_expr(query)}"
            )
        if not query.split():
            raise AqlError("MATCHES needs at least one word")
        self.searches.append(L.TextSearch(src.index, col.name, query))
        return L.MatchesValue(len(self.searches) - 1, L.show_expr(A.Matches(col, query)))

    def _bucket(self, e: A.Call, aa: bool, ag: bool) -> A.Call:
        """``bucket(a, w)``: the index of each ``w``-second bucket ``a`` spans (its rows are
        repeated once per bucket; see ``SelectPlan.buckets``). One width per entity set."""
        first = e.args[0] if e.args else None
        aliases = [s.alias for s in self.sources]
        if (
            len(e.args) != 2
            or not isinstance(first, A.FeatureRef)
            or first.qualifier is not None
            or first.name not in aliases
        ):
            raise AqlError(
                "bucket(<alias>, <seconds>) takes an entity set alias and a bucket width "
                f"(e.g. bucket(a, 1.0)); aliases here: {', '.join(aliases)}"
            )
        width = _constant_number(e.args[1])
        if width is None or width <= 0:
            raise AqlError("bucket(): the width must be a positive number of seconds")
        src = self.sources[aliases.index(first.name)]
        if self.buckets.setdefault(src.index, width) != width:
            raise AqlError(
                f"bucket(): one width per entity set: {first.name} is bucketed by "
                f"{self.buckets[src.index]:g} s and by {width:g} s"
            )
        start = L.ColumnValue(src.index, "start_s", "num", first.name)
        return A.Call("bucket", (start, self._expr(e.args[1], aa, ag)))

    def type_of(self, e: Any) -> str:  # noqa: C901 - one branch per node type
        """The static type of a resolved expression; raises AqlTypeError on a bad operand."""
        if isinstance(e, (L.ColumnValue, L.FeatureValue, L.AliasValue)):
            return e.type
        if isinstance(e, L.MatchesValue):
            return "bool"
        if isinstance(e, L.RegionPredicate):
            for side in (e.left, e.right):
                self._want(side, {"box", "null"}, f"an operand of {e.op}")
            return "bool"
        if isinstance(e, (A.Number, A.TimeLit, A.FrameLit)):
            return "num"
        if isinstance(e, A.String):
            return "str"
        if isinstance(e, A.Bool):
            return "bool"
        if isinstance(e, A.Null):
            return "null"
        if isinstance(e, A.BinaryOp):
            want = "bool" if e.op in ("AND", "OR") else "num"
            for side in (e.left, e.right):
                self._want(side, {want, "null"}, f"an operand of {e.op}")
            if e.op in ("/", "%") and _constant_number(e.right) == 0:
                raise AqlError(f"division by zero in {L.show_expr(e)}")
            return want
        if isinstance(e, A.UnaryOp):
            want = "bool" if e.op == "NOT" else "num"
            self._want(e.operand, {want, "null"}, f"the operand of {e.op}")
            return want
        if isinstance(e, A.Compare):
            lt, rt = self.type_of(e.left), self.type_of(e.right)
            for side, t in ((e.left, lt), (e.right, rt)):
                if t not in SCALAR_TYPES:
                    raise AqlTypeError(
                        f"cannot compare {L.show_expr(side)} (a {t} value) with {e.op}"
                    )
            if "null" not in (lt, rt) and lt != rt:
                raise AqlTypeError(
                    f"cannot compare {L.show_expr(e.left)} ({lt}) with "
                    f"{L.show_expr(e.right)} ({rt})"
                )
            return "bool"
        if isinstance(e, A.InList):
            self._same(e.expr, e.items, SCALAR_TYPES, "IN")
            return "bool"
        if isinstance(e, A.Like):
            self._want(e.expr, {"str", "null"}, "the operand of LIKE")
            self._want(e.pattern, {"str", "null"}, "the pattern of LIKE")
            return "bool"
        if isinstance(e, A.IsNull):
            self.type_of(e.expr)
            return "bool"
        if isinstance(e, A.Between):
            self._same(e.expr, (e.low, e.high), {"num", "str", "null"}, "BETWEEN")
            return "bool"
        if isinstance(e, A.SpanPredicate):
            return "bool"
        if isinstance(e, A.Call):
            return self._call_type(e)
        if isinstance(e, A.Star):
            return "num"
        raise AqlError(f"unsupported expression {type(e).__name__}")

    def _same(self, e: Any, others: Any, allowed: Any, what: str) -> None:
        """``e`` and ``others`` are of one type (NULL fits any)."""
        t = self._want(e, allowed, f"an operand of {what}")
        for o in others:
            ot = self._want(o, allowed, f"an operand of {what}")
            if "null" not in (t, ot) and t != ot:
                raise AqlTypeError(
                    f"{what}: {L.show_expr(e)} ({t}) does not compare with {L.show_expr(o)} ({ot})"
                )

    def _want(self, e: Any, allowed: set[str] | frozenset[str], what: str) -> str:
        t = self.type_of(e)
        if t not in allowed:
            raise AqlTypeError(
                f"{what} must be {' or '.join(sorted(allowed - {'null'}))}: "
                f"{L.show_expr(e)} is a {t} value"
            )
        return t

    def _call_type(self, e: A.Call) -> str:
        n = len(e.args)
        if e.name in REGION_FUNCTIONS:
            wanted, result = REGION_FUNCTIONS[e.name]
            if n != len(wanted):
                raise AqlError(f"{e.name}() takes {len(wanted)} arguments, not {n}")
            for a, w in zip(e.args, wanted):
                self._want(a, {"num" if w == "span" else w, "null"}, f"an argument of {e.name}()")
            return result
        if e.name in AGGREGATES:
            if e.name == "count":
                if n > 1:
                    raise AqlError("count() takes one argument or *")
                return "num"
            if n != 1 or isinstance(e.args[0], A.Star):
                raise AqlError(f"{e.name}() takes one argument")
            allowed = {"num", "null"} if e.name in ("sum", "avg") else {"num", "str", "null"}
            t = self._want(e.args[0], allowed, f"the argument of {e.name}()")
            return "num" if e.name in ("sum", "avg") else t
        if e.name not in SCALAR_FUNCTIONS:
            raise ResolveError(
                f"unknown function {e.name!r}",
                name=e.name,
                candidates=sorted(AGGREGATES | set(SCALAR_FUNCTIONS) | set(REGION_FUNCTIONS)),
            )
        lo, hi, result = SCALAR_FUNCTIONS[e.name]
        if not lo <= n <= hi:
            raise AqlError(f"{e.name}() takes {lo}..{hi} arguments, not {n}")
        if any(isinstance(a, A.Star) for a in e.args):
            raise AqlError(f"{e.name}(*) is not allowed")
        want = {"str", "null"} if result == "str" or e.name == "length" else SCALAR_TYPES
        if result == "num" and e.name != "length":
            want = {"num", "null"}
        types = [self._want(a, want, f"an argument of {e.name}()") for a in e.args]
        if e.name == "round" and n == 2:
            digits = _constant_number(e.args[1])
            if digits is not None and (digits != int(digits) or abs(digits) > MAX_ROUND_DIGITS):
                raise AqlError(
                    f"round(): the number of decimals {L.show_expr(e.args[1])} must be a whole "
                    f"number between {-MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
                )
        return result or next((t for t in types if t != "null"), "null")


def _leaf_key(e: Any) -> Any:
    """What identifies a resolved expression, whatever the user called it (``s.asset``)."""
    if isinstance(e, L.ColumnValue):
        return ("column", e.source, e.name)
    if isinstance(e, L.FeatureValue):
        return ("feature", e.slot)
    return e


def expr_key(e: Any) -> Any:
    """A resolved expression with how the user spelled its names left out: ``s.index % 2``
    and ``index % 2`` over the same source are the same GROUP BY key."""
    if isinstance(e, (L.ColumnValue, L.FeatureValue)):
        return _leaf_key(e)
    if dataclasses.is_dataclass(e) and not isinstance(e, type):
        return (type(e).__name__,) + tuple(
            expr_key(getattr(e, f.name)) for f in dataclasses.fields(e) if f.name != "label"
        )
    if isinstance(e, tuple):
        return tuple(expr_key(x) for x in e)
    return e


def _not_constant(e: Any, what: str) -> None:
    """A GROUP BY or ORDER BY key must depend on the rows (`ORDER BY 1` is not a position)."""
    if not _refs(e):
        raise AqlError(
            f"{what} {L.show_expr(e)} is a constant: {what} takes a column, a feature"
            f"{', a select alias' if what == 'ORDER BY' else ''} or an expression of them "
            "(not a position in the select list)"
        )


def _refs(e: Any) -> bool:
    if isinstance(e, (L.ColumnValue, L.FeatureValue, L.AliasValue, A.Star)):
        return True
    return any(_refs(c) for c in _children(e))


def _check_grouped(e: Any, group: tuple[A.Expr, ...], what: str) -> None:
    """With GROUP BY or aggregates, ``e`` must be an aggregate, a GROUP BY key, a select alias
    or built from them."""
    keys = {expr_key(g) for g in group}
    stack = [e]
    while stack:
        x = stack.pop()
        if expr_key(x) in keys or isinstance(x, L.AliasValue):
            continue
        if isinstance(x, A.Call) and x.name in AGGREGATES:
            continue
        if isinstance(x, (L.ColumnValue, L.FeatureValue)):
            raise AqlError(
                f"{L.show_expr(x)} in {what} is neither grouped nor aggregated: add it to "
                f"GROUP BY or use an aggregate (min({L.show_expr(x)}), count(...))"
            )
        stack.extend(_children(x))


def has_aggregate(e: Any) -> bool:
    if isinstance(e, A.Call) and e.name in AGGREGATES:
        return True
    return any(has_aggregate(c) for c in _children(e))


def _children(e: Any) -> list[Any]:
    if isinstance(e, (A.BinaryOp, A.Compare)):
        return [e.left, e.right]
    if isinstance(e, A.UnaryOp):
        return [e.operand]
    if isinstance(e, A.InList):
        return [e.expr, *e.items]
    if isinstance(e, A.Like):
        return [e.expr, e.pattern]
    if isinstance(e, A.IsNull):
        return [e.expr]
    if isinstance(e, A.Between):
        return [e.expr, e.low, e.high]
    if isinstance(e, A.Call):
        return list(e.args)
    if isinstance(e, L.RegionPredicate):
        return [e.left, e.right]
    return []


def conjuncts(e: A.Expr | None) -> list[A.Expr]:
    """``a AND b AND c`` as [a, b, c]."""
    if e is None:
        return []
    if isinstance(e, A.BinaryOp) and e.op == "AND":
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def build_select(schema: PlanSchema, sel: A.Select) -> L.SelectPlan:
    """Resolve a SELECT into a logical plan (WHERE above the feature joins: the optimizer's
    rules push entity filters down)."""
    b = Builder(schema, sel)
    search = nearest_search(b, sel.nearest) if sel.nearest is not None else None
    items, names = _select_items(b, sel)
    where = b.expr(sel.where) if sel.where is not None else None
    if where is not None:
        b._want(where, {"bool", "null"}, "WHERE")
    ons = [b.expr(j.on) for j in sel.joins]
    group = tuple(b.expr(g) for g in sel.group_by)
    for i, n in enumerate(names):
        b.aliases.setdefault(n, i)
        b.alias_types.setdefault(n, b.type_of(items[i]))
    having = None
    if sel.having is not None:
        having = b.expr(sel.having, allow_alias=True, allow_agg=True)
        b._want(having, {"bool", "null"}, "HAVING")
    keys = tuple(
        (b.expr(o.expr, allow_alias=True, allow_agg=True), o.descending) for o in sel.order_by
    )
    for g in group:
        _not_constant(g, "GROUP BY")
    for k, _ in keys:
        _not_constant(k, "ORDER BY")

    # The tree: scans with their feature joins, joined, then WHERE, GROUP, project, sort, limit.
    def chain(src: L.Source) -> L.PlanNode:
        node: L.PlanNode = L.EntityScan(src.index)
        if search is not None and search.source == src.index:
            node = L.Nearest(node)
        for use in b.features:
            if use.source == src.index:
                node = L.FeatureJoin(node, use.slot)
        return node

    root = chain(b.sources[0])
    for src, on in zip(b.sources[1:], ons):
        root = L.SpanJoin(root, chain(src), on)
    if where is not None:
        root = L.Filter(root, where)
    aggregated = bool(group) or any(has_aggregate(i) for i in items) or having is not None
    if aggregated:
        for what, exprs in (
            ("the select list", items),
            ("HAVING", [having] if having is not None else []),
            ("ORDER BY", [k for k, _ in keys]),
        ):
            for e in exprs:
                _check_grouped(e, group, what)
        root = L.Aggregate(root, group)
        if having is not None:
            root = L.Having(root, having)
    root = L.Project(root, tuple(items), tuple(names))
    if not keys and search is not None and not aggregated:  # nearest first
        keys = (
            (b.column(None, SCORE), True),
            (L.ColumnValue(search.source, "id", "str", "id"), False),
        )
    if keys:
        root = L.Sort(root, keys)
    if sel.limit is not None:
        root = L.Limit(root, sel.limit, sel.offset or 0)
    return L.SelectPlan(
        root,
        tuple(b.sources),
        tuple(b.features),
        search,
        tuple(b.searches),
        tuple(sorted(b.buckets.items())),
    )


def ef_option(options: tuple[tuple[str, A.Literal], ...], what: str) -> int | None:
    """The ``ef`` of ``WITH (ef=N)`` (the only option of NEAREST and MATCH), or None."""
    ef = None
    for name, lit in options:
        if name != "ef":
            raise AqlError(f"unknown {what} option {name!r}: the only option is ef (WITH (ef=N))")
        value = literal_value(lit)
        lo, hi = EF_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise AqlError(
                f"{what} option ef must be an integer in [{lo}, {hi}], not {to_aql(lit)}"
            )
        ef = value
    return ef


def min_shot_option(options: tuple[tuple[str, A.Literal], ...]) -> float | None:
    """The ``min_shot`` of MATCH's ``WITH (min_shot=S)`` (seconds, >= 0), or None."""
    value = None
    for name, lit in options:
        if name != "min_shot":
            continue
        value = literal_value(lit)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise AqlError(f"MATCH option min_shot must be seconds >= 0, not {to_aql(lit)}")
        value = float(value)
    return value


def vector_feature(schema: PlanSchema, ref: A.FeatureRef, src: L.Source, role: str) -> L.FeatureUse:
    """A feature use over ``src``'s entities whose value is a fixed-size float vector."""
    if ref.name not in schema.registry.names():
        raise ResolveError(
            f"unknown feature {ref.name!r}", name=ref.name, candidates=schema.registry.names()
        )
    use = feature_use(schema, ref, src, -1, entity_ok=False)
    if use.entity != src.entity_type:
        raise AqlTypeError(
            f"{role} {use.label}: the feature is over {use.entity!r} entities, not "
            f"{src.entity_type!r} entities"
        )
    spec = schema.feature(use.name, use.version)
    if spec.dim is None:
        raise AqlTypeError(
            f"{role} {use.label}: NEAREST searches a vector feature (a fixed-size list of "
            f"floats); {use.label} is {spec.output_type}"
        )
    return use


def nearest_search(b: Builder, n: A.Nearest) -> L.NearestSearch:
    """Resolve ``NEAREST k TO [f OF] <type> '<id>' BY <feature> [WITH (ef=N)]`` over the FROM
    set (the target entity itself is resolved when the query runs)."""
    src = b.sources[0]
    if src.annotation is not None:
        return _annotation_nearest(b, n, src)
    by = vector_feature(b.schema, n.by, src, "NEAREST ... BY")
    ttype = b.schema.entity_type_of(n.target.entity_type)
    tsrc = L.Source(-1, ttype, ttype, None, None)
    target_feature = None
    if n.target_feature is None:
        if ttype != by.entity:
            raise AqlTypeError(
                f"NEAREST TO {ttype} {n.target.id!r} BY {by.label}: {by.label} is over "
                f"{by.entity}s; take the query vector from a {ttype} feature with "
                f"TO <feature> OF {ttype} '<id>'"
            )
    else:
        target_feature = vector_feature(b.schema, n.target_feature, tsrc, "NEAREST TO")
        dims = [b.schema.feature(u.name, u.version).dim for u in (target_feature, by)]
        if dims[0] != dims[1]:
            raise AqlTypeError(
                f"NEAREST TO {target_feature.label} OF ...: its vectors have {dims[0]} values, "
                f"{by.label} has {dims[1]}"
            )
    ef = ef_option(n.options, "NEAREST")
    return L.NearestSearch(src.index, n.k, ttype, n.target.id, by, target_feature, ef)


def _annotation_nearest(b: Builder, n: A.Nearest, src: L.Source) -> L.NearestSearch:
    """``FROM annotations('t') a NEAREST k TO annotation '<id>' BY vector``: an exact cosine
    search over the type's ``vector`` field (run in the query's SQL)."""
    plain = n.by.version is None and not n.by.params and n.by.qualifier in (None, src.alias)
    if not plain or n.by.name != "vector":
        raise AqlError("NEAREST over annotations searches their vector: BY vector")
    if "vector" not in b.schema.annotation_columns(src.annotation):
        raise AqlTypeError(f"annotation type {src.annotation!r} declares no vector")
    if n.target.entity_type not in ("annotation", "annotations") or n.target_feature is not None:
        raise AqlError("NEAREST over annotations takes an annotation: TO annotation '<id>'")
    if n.options:
        raise AqlError("NEAREST over annotations is an exact search: it takes no options")
    use = L.FeatureUse(-1, src.index, "vector", 0, (), "annotation", "vector", "vec", False)
    return L.NearestSearch(src.index, n.k, "annotation", n.target.id, use)


def _select_items(b: Builder, sel: A.Select) -> tuple[list[A.Expr], list[str]]:
    items: list[A.Expr] = []
    names: list[str] = []
    for it in sel.items:
        if isinstance(it.expr, A.Star):
            srcs = b.sources if it.expr.qualifier is None else [b.source(it.expr.qualifier, "*")]
            for s in srcs:
                for col, t in b.columns(s).items():
                    label = col if len(b.sources) == 1 else f"{s.alias}.{col}"
                    items.append(L.ColumnValue(s.index, col, t, label))
                    names.append(label)
            continue
        items.append(b.expr(it.expr, allow_agg=True))
        names.append(it.alias or _default_name(it.expr))
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return items, unique


def _default_name(e: A.Expr) -> str:
    if isinstance(e, A.Column):
        return e.name
    if isinstance(e, A.FeatureRef) and e.version is None and not e.params:
        return e.name
    return to_aql(e)


def build_match(schema: PlanSchema, stmt: A.Match) -> L.MatchPlan:
    """MATCH over shots: ``BY`` names a match type (``color``, ``framing``, ``motion``; see
    :mod:`amberlite.library.match_types`) or a shot feature whose value is a float vector."""
    src = make_source(schema, stmt.entity_set, 0)
    if src.using is not None:
        raise AqlError(_USING_SEARCH.format("MATCH"))
    if src.entity_type != "shot":
        raise AqlError(f"MATCH pairs shots, not {src.entity_type}s: use MATCH shots ...")
    if stmt.by.version is not None or stmt.by.params or stmt.by.qualifier is not None:
        raise AqlError("MATCH ... BY takes a plain match type or feature name")
    for name, _ in stmt.options:
        if name not in ("ef", "min_shot"):
            raise AqlError(
                f"unknown MATCH option {name!r}: the options are ef and min_shot "
                "(WITH (ef=N, min_shot=S))"
            )
    ef = ef_option(tuple(o for o in stmt.options if o[0] != "min_shot"), "MATCH")
    min_shot = min_shot_option(stmt.options)
    match = resolve_match_type(schema.registry, stmt.by.name)
    use = feature_use(schema, A.FeatureRef(match.feature), src, 0)
    options = (("ef", ef),) if ef is not None else ()
    options += (("min_shot", min_shot),) if min_shot is not None else ()
    return L.MatchPlan(src, match.match_type, use, stmt.top, stmt.across_assets, options)


def build(schema: PlanSchema, stmt: A.Statement) -> L.Plan:
    """The logical plan of one statement (EXPLAIN is unwrapped by the caller)."""
    if isinstance(stmt, A.Select):
        return build_select(schema, stmt)
    if isinstance(stmt, A.Show):
        return L.ShowPlan(stmt.what)
    if isinstance(stmt, A.Describe):
        return L.DescribePlan(stmt.name)
    if isinstance(stmt, A.Match):
        return build_match(schema, stmt)
    raise AqlError(f"cannot plan a {type(stmt).__name__} statement")

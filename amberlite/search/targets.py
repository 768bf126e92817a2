"""Entity references, both ways: what a person types -> the stable id, and back.

A reference is read as AQL reads it (see :mod:`amberlite.core.ids`):

* a span entity (``shot``, any declared span type): ``'<asset>/<index>'`` (``'film1/42'``),
  ``'<asset>/<start>-<end>'`` (frames), or the raw entity id ``'<asset_id>/<start>-<end>'``;
* a frame: ``'<asset>/f<n>'`` or ``'<asset>/<n>'``;
* an asset: its alias or id.

``<asset>`` is an alias or an asset id. Span types are segmented on demand for the
reference's asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from amberlite.context import StoreContext
from amberlite.core.ids import (
    frame_id,
    frame_number,
    frame_ref,
    frame_ref_sql,
    parse_ref,
    span_id,
    span_ref,
    span_ref_sql,
)
from amberlite.core.refs import resolve_asset_refs
from amberlite.errors import ResolveError

if TYPE_CHECKING:
    import polars as pl


def _asset_of(ctx: StoreContext, ref: str, whole: str, etype: str) -> str:
    names = ctx.names()
    try:
        return resolve_asset_refs([ref], names.by_alias, names.ids)[0]
    except ResolveError:
        raise ResolveError(
            f"unknown {etype} {whole!r}: no asset {ref!r}", name=ref, candidates=names.by_alias
        ) from None


def resolve_target(
    ctx: StoreContext, etype: str, text: str, compute: bool = True
) -> tuple[str, str]:
    """(entity id, asset id) of the entity ``text`` names (see the module docstring); raises
    ResolveError naming ``text`` when there is no such entity."""
    if not isinstance(text, str):
        raise ResolveError(f"an entity is named by a reference such as 'film1/0', not {text!r}")
    if etype == "asset":
        asset_id = _asset_of(ctx, text, text, etype)
        return asset_id, asset_id
    head, kind, value = parse_ref(text)
    if kind is None:
        raise ResolveError(
            f"unknown {etype} {text!r}: name it '<asset>/<index>' (e.g. 'film1/0') or by its id"
        )
    asset_id = _asset_of(ctx, head, text, etype)
    if etype == "frame":
        count = ctx.catalog.query("SELECT frame_count FROM assets WHERE asset_id = ?", [asset_id])[
            0
        ][0]
        if kind not in ("frame", "index") or value >= count:
            raise ResolveError(f"unknown frame {text!r}: {head} has frames f0..f{count - 1}")
        return frame_id(asset_id, value), asset_id
    prod = ctx.registry.producer_of(etype)
    if prod is None:
        raise ResolveError(f"no segmenter produces entity type {etype!r}")
    if compute and not ctx.resolver.is_complete(prod, None, [asset_id]):
        ctx.resolver.materialize(prod, None, [asset_id])
    producer = ctx.producer_label(etype)
    if kind == "span":
        where, arg = "entity_id = ?", span_id(asset_id, *value)
    elif kind == "index":
        where, arg = "idx = ?", value
    else:
        where, arg = "entity_id = ?", text
    rows = ctx.catalog.query(
        "SELECT entity_id, idx FROM entities WHERE entity_type = ? AND producer = ? "
        f"AND asset_id = ? AND {where}",
        [etype, producer, asset_id, arg],
    )
    if not rows:
        n = ctx.catalog.query(
            "SELECT count(*) FROM entities WHERE entity_type = ? AND producer = ? AND asset_id = ?",
            [etype, producer, asset_id],
        )[0][0]
        have = f"{head} has {etype}s 0..{n - 1}" if n else f"{head} has no {etype}s"
        raise ResolveError(f"unknown {etype} {text!r}: {have}", name=text)
    return rows[0][0], asset_id


def entity_refs(
    ctx: StoreContext, etype: str, entity_ids: Sequence[str]
) -> dict[str, tuple[str, str, int]]:
    """``entity id -> (ref, asset alias, index)`` for entities of one type (readable
    references as AQL's ``ref`` column shows them); unknown ids are left out."""
    alias_of = ctx.names().alias_of
    ids = list(dict.fromkeys(entity_ids))
    if etype == "asset":
        return {i: (alias_of[i], alias_of[i], 0) for i in ids if i in alias_of}
    if etype == "frame":
        out = {}
        for i in ids:
            asset = i.split("/", 1)[0]
            if asset in alias_of:
                n = frame_number(i)
                out[i] = (frame_ref(alias_of[asset], n), alias_of[asset], n)
        return out
    rows = ctx.catalog.query(
        "SELECT entity_id, asset_id, idx FROM entities WHERE entity_type = ? AND producer = ? "
        "AND entity_id IN (SELECT unnest(?::TEXT[]))",
        [etype, ctx.producer_label(etype), ids],
    )
    return {e: (span_ref(alias_of[a], x), alias_of[a], x) for e, a, x in rows if a in alias_of}


def with_refs(ctx: StoreContext, etype: str, data: Any, members_only: bool = False) -> pl.DataFrame:
    """``data`` (an Arrow table or polars DataFrame with ``id`` and ``asset_id``) with the
    shared vocabulary in front: ``id``, ``ref`` (``film1/12``, ``film1/f4``, ``film1``),
    ``asset`` (alias), ``asset_id``, then its other columns, in time order (asset alias, then
    position). DuckDB joins the span indexes and sorts the narrow key columns on a catalog
    read; the values (vectors can be wide) are only gathered once, in Arrow, in that order.
    ``members_only``: drop spans that are not of the store's segmentation (values stored for
    entities of another one, ``USING``)."""
    import polars as pl
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else data.to_arrow()
    if etype == "asset":
        pos, ref, span = "", "a.alias", ""
    elif etype == "frame":
        pos = "CAST(regexp_extract(k.id, '/f([0-9]+)$', 1) AS BIGINT)"
        ref, span = f"{frame_ref_sql('a.alias', pos)}", ""
    else:
        pos, ref = "e.idx", span_ref_sql("a.alias", "e.idx")
        span = (
            f"{'' if members_only else 'LEFT '}JOIN (SELECT entity_id, idx FROM entities "
            "WHERE entity_type = $t "
            "AND producer = $p) e ON e.entity_id = k.id"
        )
    keys = pa.table(
        {
            "rn": pa.array(range(table.num_rows), pa.int64()),
            "id": table.column("id"),
            "asset_id": table.column("asset_id"),
        }
    )
    sql = (
        f"SELECT k.rn, {ref} AS ref, a.alias AS asset "
        f"FROM _refs_keys k LEFT JOIN assets a ON a.asset_id = k.asset_id {span} "
        f"ORDER BY a.alias NULLS LAST, {pos + ' NULLS LAST, ' if pos else ''}k.id"
    )
    params = {"t": etype, "p": ctx.producer_label(etype)} if span else {}
    with ctx.catalog.read() as con:
        con.register("_refs_keys", keys)
        try:
            order = con.sql(sql, params=params).to_arrow_table()
        finally:
            con.unregister("_refs_keys")
    rows = table.take(order.column("rn"))
    rest = [c for c in table.column_names if c not in ("id", "asset_id")]
    out = pa.table(
        {
            "id": rows.column("id"),
            "ref": order.column("ref"),
            "asset": order.column("asset"),
            "asset_id": rows.column("asset_id"),
            **{c: rows.column(c) for c in rest},
        }
    )
    return pl.from_arrow(out)

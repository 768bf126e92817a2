"""NEAREST in a SELECT: resolve the target entity, read its query vector, run the search.

The target is named as a person reads it or as SELECT's ``id`` column shows it:

* a span entity (``shot``, any declared span type): ``'<asset>/<index>'`` (``'film1/42'``: the
  shot with ``index`` 42 of the asset with alias ``film1``), ``'<asset>/<start>-<end>'``
  (frames), or the raw entity id ``'<asset_id>/<start>-<end>'``;
* a frame: ``'<asset>/f<n>'`` or ``'<asset>/<n>'``;
* an asset: its alias or id.

``<asset>`` is an alias or an asset id. Span types are segmented on demand for the target's
asset. The search itself is :func:`amberlite.similarity.nearest` (the replica index when one
exists, else exact on torch) over the FROM set's assets, asked for ``k + 1`` so that the target
can be dropped from its own result.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from amberlite.errors import AqlError, ResolveError
from amberlite.plan import logical as L
from amberlite.plan.build import catalog_names
from amberlite.run.resolve import memo_key

if TYPE_CHECKING:
    from amberlite.api import Store

_SPAN = re.compile(r"(\d+)-(\d+)")
_FRAME = re.compile(r"f?(\d+)")


def _asset_of(store: Store, ref: str, whole: str, etype: str) -> str:
    names = catalog_names(store)
    if ref in names.by_alias:
        return names.by_alias[ref]
    if ref in names.ids:
        return ref
    raise ResolveError(
        f"unknown {etype} {whole!r}: no asset {ref!r}", name=ref, candidates=names.by_alias
    )


def resolve_target(store: Store, etype: str, text: str, compute: bool = True) -> tuple[str, str]:
    """(entity id, asset id) of the entity ``text`` names (see the module docstring); raises
    ResolveError naming ``text`` when there is no such entity."""
    if etype == "asset":
        asset_id = _asset_of(store, text, text, etype)
        return asset_id, asset_id
    head, sep, tail = text.rpartition("/")
    if not sep:
        raise ResolveError(
            f"unknown {etype} {text!r}: name it '<asset>/<index>' (e.g. 'film1/0') or by its id"
        )
    asset_id = _asset_of(store, head, text, etype)
    if etype == "frame":
        m = _FRAME.fullmatch(tail)
        count = store.catalog.query(
            "SELECT frame_count FROM assets WHERE asset_id = ?", [asset_id]
        )[0][0]
        if m is None or int(m.group(1)) >= count:
            raise ResolveError(f"unknown frame {text!r}: {head} has frames f0..f{count - 1}")
        return f"{asset_id}/f{int(m.group(1))}", asset_id
    prod = store.registry.producer_of(etype)
    if prod is None:
        raise ResolveError(f"no segmenter produces entity type {etype!r}")
    if compute and not store.resolver.is_complete(prod, None, [asset_id]):
        store.resolver.materialize(prod, None, [asset_id])
    producer = store.resolver.producer_label(etype)
    span = _SPAN.fullmatch(tail)
    if span is not None:
        where, arg = "entity_id = ?", f"{asset_id}/{int(span.group(1))}-{int(span.group(2))}"
    elif tail.isdigit():
        where, arg = "idx = ?", int(tail)
    else:
        where, arg = "entity_id = ?", text
    rows = store.catalog.query(
        f"SELECT entity_id, idx FROM entities WHERE entity_type = ? AND producer = ? "
        f"AND asset_id = ? AND {where}",
        [etype, producer, asset_id, arg],
    )
    if not rows:
        n = store.catalog.query(
            "SELECT count(*) FROM entities WHERE entity_type = ? AND producer = ? AND asset_id = ?",
            [etype, producer, asset_id],
        )[0][0]
        have = f"{head} has {etype}s 0..{n - 1}" if n else f"{head} has no {etype}s"
        raise ResolveError(f"unknown {etype} {text!r}: {have}", name=text)
    return rows[0][0], asset_id


def query_vector(store: Store, use: L.FeatureUse, entity_id: str, asset_id: str, text: str):
    """The value of feature ``use`` at one entity (computed when missing), as float32."""
    from amberlite.connectors.base import as_matrix

    spec = store.registry.get(use.name, use.version)
    params = dict(use.params)
    key = memo_key(spec, params)
    found = store.memo.read(key, spec.output, entity_ids=[entity_id])
    if found.num_rows == 0:
        store.resolver.materialize(spec, params, [asset_id], entity_ids=[entity_id])
        found = store.memo.read(key, spec.output, entity_ids=[entity_id])
    if found.num_rows == 0:
        raise AqlError(
            f"{use.label} has no value for {spec.entity} {text!r} (its computation failed: "
            "see `amberlite status`)"
        )
    return as_matrix(found.column("value"), spec.output.list_size)[-1]


def run_search(store: Store, plan: L.SelectPlan) -> pl.DataFrame:
    """The k nearest entities (entity_id, asset_id, score) of a NEAREST select, best first;
    ``.method`` / ``.explain`` say which search ran."""
    from amberlite import similarity

    n = plan.nearest
    assert n is not None
    src = plan.sources[n.source]
    entity_id, asset_id = resolve_target(store, n.target_type, n.target_id)
    use = n.target_feature or n.feature
    vec = query_vector(store, use, entity_id, asset_id, n.target_id)
    assets = list(src.asset_ids) if src.asset_ids is not None else None
    found = similarity.nearest(
        store,
        f"{n.feature.name}@{n.feature.version}",
        np.asarray(vec, np.float32),
        n.k + 1,
        n.ef,
        assets,
        params=dict(n.feature.params),
    )
    out = found.filter(pl.col("entity_id") != entity_id).head(n.k)
    out.method, out.explain = found.method, found.explain  # type: ignore[attr-defined]
    return out


def search_table(found: pl.DataFrame) -> pa.Table:
    """(entity_id, score) of a search result, for the SQL join."""
    return pa.table(
        {
            "entity_id": pa.array(found["entity_id"].to_list(), pa.string()),
            "score": pa.array(found["score"].to_numpy(), pa.float32()),
        }
    )


def search_line(store: Store, plan: L.SelectPlan) -> str:
    """EXPLAIN's ``search:`` line of a NEAREST select (reads no values)."""
    from amberlite.similarity import explain_path

    n = plan.nearest
    assert n is not None
    src = plan.sources[n.source]
    assets = list(src.asset_ids) if src.asset_ids is not None else None
    feature = f"{n.feature.name}@{n.feature.version}"
    return explain_path(store, feature, assets, dict(n.feature.params), n.ef)

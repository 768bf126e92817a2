"""NEAREST in a SELECT: resolve the target entity, read its query vector, run the search.

The target is named as a person reads it or as SELECT's ``id`` / ``ref`` columns show it (see
:mod:`amberlite.search.targets`). The search itself is :func:`amberlite.search.similarity.nearest`
(the replica index when one exists, else exact on torch) over the FROM set's assets, asked for
``k + 1`` so that the target can be dropped from its own result.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from amberlite.context import StoreContext
from amberlite.core.vectors import as_matrix
from amberlite.errors import AqlError
from amberlite.memo.key import memo_key
from amberlite.plan import logical as L
from amberlite.search import similarity
from amberlite.search.result import SearchResult
from amberlite.search.targets import resolve_target


def query_vector(ctx: StoreContext, use: L.FeatureUse, entity_id: str, asset_id: str, text: str):
    """The value of feature ``use`` at one entity (computed when missing), as float32."""
    spec = ctx.registry.get(use.name, use.version)
    params = dict(use.params)
    key = memo_key(spec, params)
    found = ctx.memo.read(key, spec.output, entity_ids=[entity_id])
    if found.num_rows == 0:
        ctx.resolver.materialize(spec, params, [asset_id], entity_ids=[entity_id])
        found = ctx.memo.read(key, spec.output, entity_ids=[entity_id])
    if found.num_rows == 0:
        raise AqlError(
            f"{use.label} has no value for {spec.entity} {text!r} (its computation failed: "
            "see `amberlite status`)"
        )
    return as_matrix(found.column("value"), spec.output.list_size)[-1]


def run_search(ctx: StoreContext, plan: L.SelectPlan) -> SearchResult:
    """The k nearest entities of a NEAREST select (``id``, ..., ``score``), best first."""
    n = plan.nearest
    assert n is not None
    src = plan.sources[n.source]
    entity_id, asset_id = resolve_target(ctx, n.target_type, n.target_id)
    use = n.target_feature or n.feature
    vec = query_vector(ctx, use, entity_id, asset_id, n.target_id)
    assets = list(src.asset_ids) if src.asset_ids is not None else None
    found = similarity.nearest(
        ctx,
        f"{n.feature.name}@{n.feature.version}",
        np.asarray(vec, np.float32),
        n.k + 1,
        n.ef,
        assets,
        params=dict(n.feature.params),
    )
    table = found.table.filter(found.table["id"] != entity_id).head(n.k)
    return found.with_table(table)


def search_table(found: SearchResult) -> pa.Table:
    """(entity_id, score) of a search result, for the SQL join."""
    return pa.table(
        {
            "entity_id": pa.array(found.table["id"].to_list(), pa.string()),
            "score": pa.array(found.table["score"].to_numpy(), pa.float32()),
        }
    )


def search_line(ctx: StoreContext, plan: L.SelectPlan) -> str:
    """EXPLAIN's ``search:`` line of a NEAREST select (reads no values)."""
    n = plan.nearest
    assert n is not None
    src = plan.sources[n.source]
    assets = list(src.asset_ids) if src.asset_ids is not None else None
    feature = f"{n.feature.name}@{n.feature.version}"
    return similarity.explain_path(ctx, feature, assets, dict(n.feature.params), n.ef)

"""The one asset-reference resolver: aliases or ids -> asset ids.

Example:
    >>> resolve_asset_refs(["film1", "ab"], {"film1": "f1"}, {"f1", "ab"})
    ('f1', 'ab')
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from amberlite.errors import ResolveError


def resolve_asset_refs(
    refs: Iterable[str], by_alias: Mapping[str, str], ids: Collection[str]
) -> tuple[str, ...]:
    """Asset ids of ``refs`` (each an alias or an asset id), in order, deduplicated; an
    unknown reference raises ResolveError naming the closest alias. An alias wins over an id
    (aliases that look like another asset's id are refused at ingest)."""
    out = []
    for ref in refs:
        if not isinstance(ref, str):
            raise ResolveError(f"an asset is named by its alias or id, not {ref!r}")
        if ref in by_alias:
            out.append(by_alias[ref])
        elif ref in ids:
            out.append(ref)
        else:
            raise ResolveError(f"unknown asset {ref!r}", name=ref, candidates=by_alias)
    return tuple(dict.fromkeys(out))

"""Match types of match cutting: which shot feature embeds each, and how pairs are scored.

``color``, ``framing`` and ``motion`` are built in (features of :mod:`amberlite.library.matchcut`);
any shot feature whose value is a fixed-size float vector is a match type too, scored by
cosine (e.g. a learned embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

from amberlite.define.info import FeatureInfo
from amberlite.define.registry import Registry
from amberlite.errors import AmberliteError, ResolveError

# match type -> (feature, metric)
MATCH_TYPES: dict[str, tuple[str, str]] = {
    "color": ("match_color", "cosine"),
    "framing": ("match_framing", "iou"),
    "motion": ("match_motion", "cosine"),
}
DEDUP = "dedup"  # the shot feature that marks near-duplicates (False: never paired)


@dataclass(frozen=True)
class MatchSpec:
    """A resolved match type: the shot feature that embeds it and how pairs are scored."""

    match_type: str
    feature: str
    metric: str


def resolve_match_type(registry: Registry, match_type: str) -> MatchSpec:
    """The :class:`MatchSpec` of a built-in match type or of a vector shot feature."""
    if match_type in MATCH_TYPES:
        feat, metric = MATCH_TYPES[match_type]
        return MatchSpec(match_type, feat, metric)
    names = registry.names()
    if match_type not in names:
        raise ResolveError(
            f"unknown match type {match_type!r}",
            name=match_type,
            candidates=list(MATCH_TYPES) + names,
        )
    spec = registry.get(match_type)
    info = spec if isinstance(spec, FeatureInfo) else FeatureInfo.of(spec)
    if info.entity != "shot" or info.dim is None:
        raise AmberliteError(
            f"{match_type!r} cannot be a match type: it must be a shot feature whose value is "
            f"a fixed-size float vector (it is over {info.entity!r}, of type {info.output_type})"
        )
    return MatchSpec(match_type, match_type, "cosine")

"""Accepted match cuts as an edit decision list: CMX3600 EDL text or an OpenTimelineIO file.

Each cut is two events on one video track: the tail of shot A (``pre`` seconds up to its
end), then the head of shot B (``post`` seconds from its start). Source timecodes are SMPTE
non-drop-frame at each asset's frame rate; the record side starts at 01:00:00:00.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from amberlite.core.timecode import smpte

RECORD_START_S = 3600.0


@dataclass(frozen=True)
class Clip:
    """A piece of one asset: ``[start_s, end_s)`` of ``name`` (alias) at ``fps``."""

    name: str
    path: str
    start_s: float
    end_s: float
    fps: float


def cut_clips(cut: dict, pre: float = 1.0, post: float = 1.0) -> tuple[Clip, Clip]:
    """The two clips of a cut (a pair row: ``asset_a``, ``end_a``, ``start_b``... plus
    ``path_a``/``path_b`` and ``fps_a``/``fps_b``)."""
    a = Clip(
        cut["asset_a"],
        cut["path_a"],
        max(cut["start_a"], cut["end_a"] - pre),
        cut["end_a"],
        cut["fps_a"],
    )
    b = Clip(
        cut["asset_b"],
        cut["path_b"],
        cut["start_b"],
        min(cut["end_b"], cut["start_b"] + post),
        cut["fps_b"],
    )
    return a, b


def _reel(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9]", "", name).upper() or "AX")[:8]


def edl(cuts: list[dict], title: str = "amberlite match cuts") -> str:
    """CMX3600 EDL text: two cut events per accepted match cut."""
    fps = cuts[0]["fps_a"] if cuts else 25.0
    lines = [f"TITLE: {re.sub(r'[^ -~]', '', title)[:70]}", "FCM: NON-DROP FRAME", ""]
    rec = RECORD_START_S
    event = 1
    for cut in cuts:
        for clip in cut_clips(cut):
            length = clip.end_s - clip.start_s
            lines.append(
                f"{event:03d}  {_reel(clip.name):<8} V     C        "
                f"{smpte(clip.start_s, clip.fps)} {smpte(clip.end_s, clip.fps)} "
                f"{smpte(rec, fps)} {smpte(rec + length, fps)}"
            )
            lines.append(f"* FROM CLIP NAME: {re.sub(r'[^ -~]', '', clip.name)}")
            lines.append("")
            rec += length
            event += 1
    return "\n".join(lines)


def otio(cuts: list[dict], title: str = "amberlite match cuts") -> str:
    """An OpenTimelineIO timeline (``.otio`` JSON) with the same events as :func:`edl`."""
    import opentimelineio as otio_lib

    timeline = otio_lib.schema.Timeline(name=title)
    track = otio_lib.schema.Track(name="V1", kind=otio_lib.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for k, cut in enumerate(cuts, start=1):
        for side, clip in zip("AB", cut_clips(cut)):
            ref = cut.get(f"ref_{side.lower()}")
            rt = otio_lib.opentime
            rng = rt.TimeRange(
                rt.RationalTime(round(clip.start_s * clip.fps), clip.fps),
                rt.RationalTime(round((clip.end_s - clip.start_s) * clip.fps), clip.fps),
            )
            track.append(
                otio_lib.schema.Clip(
                    name=f"cut {k} {side}: {clip.name}",
                    media_reference=otio_lib.schema.ExternalReference(target_url=clip.path),
                    source_range=rng,
                    metadata={"amberlite": {"cut": k, "side": side, "ref": ref}},
                )
            )
    return otio_lib.adapters.write_to_string(timeline, "otio_json")


def otio_events(text: str) -> list[tuple[str, float, float]]:
    """(clip name, start s, duration s) of each clip of an ``.otio`` text (for checks)."""
    data = json.loads(text)
    out = []
    for track in data["tracks"]["children"]:
        for clip in track["children"]:
            rng = clip["source_range"]
            rate = rng["start_time"]["rate"]
            out.append(
                (clip["name"], rng["start_time"]["value"] / rate, rng["duration"]["value"] / rate)
            )
    return out

"""The media layer: probing, content ids, exact frame indexing, decoding, generated media.

Every failure to read a file raises :class:`amberlite.errors.MediaError` naming the file.
"""

import importlib
from typing import Any

_WHERE = {
    "MediaError": "amberlite.errors",
    "Decode": "amberlite.media.decode",
    "read_batch": "amberlite.media.decode",
    "read_frames": "amberlite.media.decode",
    "read_luma": "amberlite.media.decode",
    "sample_frames": "amberlite.media.decode",
    "FrameIndex": "amberlite.media.frame_index",
    "frame_index": "amberlite.media.frame_index",
    "content_id": "amberlite.media.ids",
    "MediaInfo": "amberlite.media.probe",
    "probe": "amberlite.media.probe",
    "Scene": "amberlite.media.synth",
    "SynthTruth": "amberlite.media.synth",
    "corrupt_copy": "amberlite.media.synth",
    "draw_stamp": "amberlite.media.synth",
    "read_stamp": "amberlite.media.synth",
    "render": "amberlite.media.synth",
    "sample_film": "amberlite.media.synth",
}


def __getattr__(name: str) -> Any:
    """The public names load their module (PyAV, numpy) on first use."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Decode",
    "FrameIndex",
    "MediaError",
    "MediaInfo",
    "Scene",
    "SynthTruth",
    "content_id",
    "corrupt_copy",
    "draw_stamp",
    "frame_index",
    "probe",
    "read_batch",
    "read_frames",
    "read_luma",
    "read_stamp",
    "render",
    "sample_film",
    "sample_frames",
]

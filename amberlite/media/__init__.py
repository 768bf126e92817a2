"""The media layer: probing, content ids, exact frame indexing, decoding, generated media.

Every failure to read a file raises :class:`amberlite.errors.MediaError` naming the file.
"""

from amberlite.errors import MediaError
from amberlite.media.decode import Decode, read_batch, read_frames, read_luma, sample_frames
from amberlite.media.frame_index import FrameIndex, frame_index
from amberlite.media.ids import content_id
from amberlite.media.probe import MediaInfo, probe
from amberlite.media.synth import (
    Scene,
    SynthTruth,
    corrupt_copy,
    draw_stamp,
    read_stamp,
    render,
    sample_film,
)

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

"""A learned shot embedding as a feature: a TorchScript model you trained, run in batches.

    amberlite --store S apply examples/matchcut/learned.py      # model: shot_model.pt here
    amberlite --store S matchcut film1 film2 --type learned_embedding

The model takes a float32 batch (N, 3, 64, 64) of RGB frames in [0, 1] and returns (N, DIM).
Each shot's value is the L2-normalized mean of the model's output over FRAMES frames sampled
evenly through the shot. ``shot_net`` is a declared model: its file's sha256 is part of the
feature's identity (a retrained model saved over the same path is refused until you bump the
versions), and it is loaded once per worker, on its GPU when it has one.
"""

import numpy as np
import pyarrow as pa

from amberlite import Decode, feature, model
from amberlite.library.matchcut import sample_frames

DIM, FRAMES = 32, 4  # the model's output size; frames sampled per shot
shot_net = model("shot_net", "shot_model.pt", version=1, batch=256)  # relative: next to this file


def _frames(shot) -> np.ndarray:
    frames = sample_frames(shot, FRAMES)  # a very short shot gives its middle frame
    return frames[np.linspace(0, len(frames) - 1, FRAMES).round().astype(int)]


@feature(
    entity="shot",
    version=2,
    output=pa.list_(pa.float32(), DIM),
    decode=Decode(size=(64, 64), fps=4),
    batch=32,
    models=[shot_net],
)
def learned_embedding(shots, shot_net):
    """Mean TorchScript embedding of a few frames per shot, L2-normalized (batch inference)."""
    clips = np.stack([_frames(s) for s in shots])  # (N, FRAMES, 64, 64, 3)
    x = clips.reshape(-1, 64, 64, 3).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = shot_net(x).reshape(len(shots), FRAMES, -1).mean(axis=1)
    return y / np.linalg.norm(y, axis=1, keepdims=True).clip(1e-12)

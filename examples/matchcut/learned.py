"""A learned shot embedding as a feature: a TorchScript model you trained, run in batches.

    amberlite --store S apply examples/matchcut/learned.py      # model: shot_model.pt here
    amberlite --store S matchcut film1 film2 --type learned_embedding
    amberlite --store S materialize learned_embedding --param model=/models/shots-v2.pt

The model takes a float32 batch (N, 3, 64, 64) of RGB frames in [0, 1] and returns (N, DIM).
Each shot's value is the L2-normalized mean of the model's output over FRAMES frames sampled
evenly through the shot. The memo key holds the model *path*, not its bytes: save a retrained
model under a new name (shots-v2.pt), or pin ``sha256`` so a changed file fails loudly.
"""

import hashlib
import threading
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from amberlite import Decode, feature
from amberlite.library.matchcut import sample_frames

DIM = 32  # the model's output size, declared so values are fixed-size vectors
FRAMES = 4
_models: dict = {}
_lock = threading.Lock()
_HERE = Path(__file__).resolve().parent


def load_model(path: str, sha256: str = ""):
    """The TorchScript model at ``path`` (relative paths: next to this file) on the GPU when
    there is one, loaded once per process; with ``sha256`` set, a differing file is refused."""
    import torch

    path = str(_HERE / path)  # an absolute path stays as it is
    key = (path, sha256)
    with _lock:
        if key not in _models:
            data = Path(path).read_bytes()
            if sha256 and hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError(f"{path}: sha256 differs from the pinned {sha256[:12]}...")
            device = "cuda" if torch.cuda.is_available() else "cpu"
            with warnings.catch_warnings():  # TorchScript is deprecated, still the portable form
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(path, map_location=device).eval()
            _models[key] = (model, device)
        return _models[key]


def _frames(shot) -> np.ndarray:
    """FRAMES frames evenly through the shot, (FRAMES, 64, 64, 3) uint8."""
    frames = sample_frames(shot, FRAMES)  # a very short shot gives its middle frame
    pick = np.linspace(0, len(frames) - 1, FRAMES).round().astype(int)
    return frames[pick]


@feature(
    entity="shot",
    version=1,
    output=pa.list_(pa.float32(), DIM),
    params={"model": "shot_model.pt", "sha256": ""},
    decode=Decode(size=(64, 64), fps=4),
    batch=32,
)
def learned_embedding(shots, model="shot_model.pt", sha256=""):
    """Mean TorchScript embedding of a few frames per shot, L2-normalized (batch inference)."""
    import torch

    net, device = load_model(model, sha256)
    clips = np.stack([_frames(s) for s in shots])  # (N, FRAMES, 64, 64, 3)
    x = torch.from_numpy(clips).to(device).flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        y = net(x).reshape(len(shots), FRAMES, -1).mean(dim=1)
        y = torch.nn.functional.normalize(y, dim=1)
    return y.cpu().numpy().astype(np.float32)

"""Declared models: the weights' hash is part of a feature's identity (a file replaced without
a version bump is refused at apply and at materialize), a model loads once per worker process
(counted), TorchScript and state_dict + class load alike, and a model runs on the batch."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import amberlite
from amberlite.errors import ChangeRefused, DefinitionError
from amberlite.media.decode import Decode, read_batch

# The definition file the tests apply: a state_dict + class model and a TorchScript one; the
# class logs the pid of every load into LOG.
MODEL_DEFS = """
import os
import numpy as np
import pyarrow as pa
import torch
from amberlite import Decode, feature, model

LOG = {log!r}

class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        with open(LOG, "a") as f:
            f.write(f"{{os.getpid()}}\\n")

    def forward(self, x):
        return x.float().mean(dim=(1, 2, 3)) * self.w

scale = model("scale", "scale.pth", version={version}, build=Scale)
shift = model("shift", "shift.pt")

@feature(entity="frame", version={version}, output=pa.float64(), decode=Decode(size=(32, 18)),
         batch=8, models=[scale, shift])
def scaled_luma(frames, scale, shift):
    x = np.stack([f.image() for f in frames])
    return (scale(x) + shift(np.zeros((len(frames), 1), np.float32))[:, 0]).tolist()
"""


class _Shift(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


def write_models(folder: Path, weight: float) -> None:
    """The two weights files: a state_dict with ``w = weight``, a TorchScript ``x + 1``."""
    torch.save({"w": torch.tensor([weight])}, folder / "scale.pth")
    with warnings.catch_warnings():  # TorchScript is deprecated, still the portable form
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_Shift()).save(str(folder / "shift.pt"))


def write_defs(folder: Path, version: int = 1) -> Path:
    path = folder / "models_features.py"
    path.write_text(MODEL_DEFS.format(log=str(folder / "loads.log"), version=version))
    return path


def loads(folder: Path) -> list[int]:
    log = folder / "loads.log"
    return [int(x) for x in log.read_text().split()] if log.exists() else []


@pytest.fixture
def model_store(tmp_path, media_dir):
    write_models(tmp_path, 2.0)
    store = amberlite.open(tmp_path / "store")
    store.ingest([media_dir / "clip_a.mp4"], progress=False)
    store.apply(write_defs(tmp_path))
    return store


def test_model_loads_once_per_process_under_the_local_executor(model_store, tmp_path):
    values = model_store.get("scaled_luma", progress=False)
    assert values.height == 60  # 8 batches of up to 8 frames, on 2 threads
    assert loads(tmp_path) == [os.getpid()]  # one load for every batch
    _, frames = read_batch(str(model_store.assets()["path"][0]), 0, 60, Decode(size=(32, 18)))
    want = frames.reshape(60, -1).mean(axis=1) * 2.0 + 1.0  # values come in time order
    np.testing.assert_allclose(values["scaled_luma"].to_numpy(), want, rtol=1e-5)


def test_replacing_a_model_file_without_a_version_bump_is_refused(model_store, tmp_path):
    old = model_store.get("scaled_luma", progress=False)["scaled_luma"].to_numpy()
    (tmp_path / "loads.log").unlink()
    write_models(tmp_path, 3.0)  # retrained, saved over the same path
    with pytest.raises(ChangeRefused, match=r"model scale@1 weights changed .* version bump"):
        model_store.apply(write_defs(tmp_path))
    # A process that opens the store later finds the new file too: it computes nothing.
    later = amberlite.open(tmp_path / "store")
    with pytest.raises(DefinitionError, match="changed since it was applied"):
        later.materialize("scaled_luma", progress=False)
    assert loads(tmp_path) == []
    # Bumped, the new weights are a new dataset; the old values stay readable.
    model_store.apply(write_defs(tmp_path, version=2))
    again = model_store.get("scaled_luma", version=1, compute=False)["scaled_luma"].to_numpy()
    np.testing.assert_array_equal(again, old)
    new = model_store.get("scaled_luma", version=2, progress=False)["scaled_luma"].to_numpy()
    np.testing.assert_allclose((new - 1.0) / 3.0, (old - 1.0) / 2.0, rtol=1e-5)


def test_a_model_of_a_name_taken_by_a_parameter_is_a_definition_error():
    import pyarrow as pa

    from amberlite.define.decorators import feature
    from amberlite.define.model import Model

    with pytest.raises(DefinitionError, match="both a model and a parameter"):
        feature(
            entity="frame",
            output=pa.int64(),
            params={"net": 1},
            models=[Model("net", "x")],
            name="f",
        )(lambda f, net: 1)

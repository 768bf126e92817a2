"""Declared models in a worker: loaded once per process (or Ray actor), run in batches.

:func:`loaded` returns the process's one :class:`LoadedModel` for a declared
:class:`~amberlite.define.model.Model`: the weights are read once, their sha256 checked
against the hash the feature was applied with, and the module placed on ``cuda`` when this
process sees a GPU (a Ray worker given ``num_gpus`` sees its own), ``cpu`` otherwise. Calling
it runs the module under ``torch.inference_mode()`` (and ``torch.autocast`` when the model
asks for it) in slices of ``Model.batch`` items, numpy or tensors in, numpy out.

Decode overlaps the model: calls hold the model's lock only while it runs, so a second batch
decodes on the CPU (threads of the local executor, or a Ray actor's second concurrent call)
while the first one is on the device, then takes its turn.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from typing import Any

from amberlite.define.model import Model
from amberlite.errors import DefinitionError

log = logging.getLogger(__name__)
_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOCK = threading.Lock()
LOADS: list[str] = []  # model keys, one entry per load in this process (tests count them)


def device() -> str:
    """``cuda`` when this process sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LoadedModel:
    """A model on its device; call it with a batch (see the module docstring)."""

    def __init__(self, spec: Model, module: Any, device: str, sha256: str) -> None:
        self.spec = spec
        self.module = module
        self.device = device
        self.sha256 = sha256
        self._run_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoadedModel({self.spec.key} on {self.device}, sha256 {self.sha256[:12]})"

    def __call__(self, x: Any, *args: Any) -> Any:
        """Run the module on ``x`` (numpy or tensor, first axis the batch) on its device and
        return numpy (tuples, lists and dicts of tensors keep their shape)."""
        size = self.spec.batch
        n = len(x)
        if size is None or n <= size:
            return self._run(x, *args)
        parts = [self._run(x[i : i + size], *args) for i in range(0, n, size)]
        return _concat(parts)

    def _run(self, x: Any, *args: Any) -> Any:
        import torch

        t = torch.as_tensor(x)
        if self.device != "cpu" and t.device.type == "cpu":
            t = t.pin_memory().to(self.device, non_blocking=True)
        cast = self.spec.autocast
        use_cast = cast is not None and not (cast == "float16" and self.device == "cpu")
        with self._run_lock, torch.inference_mode():
            if use_cast:
                with torch.autocast(self.device, dtype=getattr(torch, cast)):
                    out = self.module(t, *args)
            else:
                out = self.module(t, *args)
            return _to_numpy(out)


def _to_numpy(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu().numpy() if out.is_floating_point() else out.cpu().numpy()
    if isinstance(out, tuple | list):
        return type(out)(_to_numpy(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    return out


def _concat(parts: list[Any]) -> Any:
    import numpy as np

    first = parts[0]
    if isinstance(first, tuple | list):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    return np.concatenate(parts)


def loaded(spec: Model, expected_sha256: str | None = None) -> LoadedModel:
    """This process's loaded copy of ``spec`` (loaded on first use). ``expected_sha256``: the
    hash the feature was applied with; a file that differs is refused."""
    dev = device()
    key = (str(spec.file), spec.key, dev)
    with _LOCK:
        hit = _LOADED.get(key)
        if hit is not None and (expected_sha256 in (None, hit.sha256)):
            return hit
        data = _read(spec)
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise DefinitionError(
                f"model {spec.key}: {spec.file} changed since the feature was applied "
                f"(sha256 {sha[:12]}, applied {expected_sha256[:12]}): bump the model's and "
                "the feature's versions and apply again"
            )
        module = _load(spec, data, dev)
        _LOADED[key] = LoadedModel(spec, module, dev, sha)
        LOADS.append(spec.key)
        log.debug("loaded model %s on %s", spec.key, dev)
        return _LOADED[key]


def _read(spec: Model) -> bytes:
    try:
        return spec.file.read_bytes()
    except OSError as e:
        raise DefinitionError(f"model {spec.key}: cannot read {spec.file}: {e}") from None


def _load(spec: Model, data: bytes, dev: str) -> Any:
    import torch

    buf = io.BytesIO(data)
    if spec.build is None:
        with warnings.catch_warnings():  # TorchScript is deprecated, still the portable form
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(buf, map_location=dev)
    else:
        module = spec.build()
        state = torch.load(buf, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module = module.to(dev)
    return module.eval()

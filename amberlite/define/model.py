"""Models as declared, versioned resources.

A :class:`Model` names a weights file and how to load it: a TorchScript file
(``torch.jit.save``), or a ``state_dict`` (``torch.save(net.state_dict(), ...)``) plus the
class (or factory) that builds the module. A feature lists the models it uses; the model's
name, version and the sha256 of its file are part of the feature's fingerprint, so a file
replaced without a version bump is refused at ``apply`` exactly as changed code is, and a
materialization refuses a file that differs from the one applied. The function receives the
loaded model (:class:`amberlite.run.models.LoadedModel`) as a keyword argument of the model's
name: loaded once per worker process or Ray actor, placed on the worker's GPU when it has
one, called in batches under ``torch.inference_mode()`` (and ``torch.autocast`` when asked).

Example:
    >>> m = Model("net", "shot_model.pt", version=2)
    >>> m.kind, m.key
    ('torchscript', 'net@2')
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amberlite.define.info import check_name
from amberlite.errors import DefinitionError

AUTOCAST = (None, "float16", "bfloat16")
_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, remembered while its size, mtime and inode stay the same."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise DefinitionError(f"model file {path}: {e.strerror or e}") from None
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


@dataclass(frozen=True, eq=False)
class Model:
    """A weights file and how to load it (see the module docstring).

    ``path``: relative paths are read next to the definition file that declares the model.
    ``build``: for a ``state_dict`` file, the ``nn.Module`` class or a no-argument factory;
    None for TorchScript. ``autocast``: ``"float16"`` / ``"bfloat16"`` runs the model under
    ``torch.autocast`` (float16 only on CUDA). ``batch``: the most items a call sends to the
    device at once (larger inputs are split).
    """

    name: str
    path: str
    version: int = 1
    build: Callable[[], Any] | None = None
    autocast: str | None = None
    batch: int | None = None
    base: str = field(default="", repr=False)  # the folder relative paths are read from

    def __post_init__(self) -> None:
        check_name(self.name, "model name")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise DefinitionError(f"model {self.name}: version must be an int >= 1")
        if self.autocast not in AUTOCAST:
            raise DefinitionError(f"model {self.name}: autocast must be one of {AUTOCAST}")
        if self.build is not None and not callable(self.build):
            raise DefinitionError(f"model {self.name}: build must be a class or a factory")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            raise DefinitionError(f"model {self.name}: batch must be an int >= 1")

    @property
    def kind(self) -> str:
        return "torchscript" if self.build is None else "state_dict"

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def file(self) -> Path:
        p = Path(self.path).expanduser()
        return p if p.is_absolute() or not self.base else Path(self.base) / p

    def sha256(self) -> str:
        """The content hash of the weights file as it is now."""
        return file_sha256(self.file)

    def declaration(self) -> dict[str, Any]:
        """What the feature's fingerprint holds of the model: name, version, kind, hash."""
        return {
            "version": self.version,
            "kind": self.kind,
            "sha256": self.sha256(),
            **({"autocast": self.autocast} if self.autocast else {}),
        }


def model(
    name: str,
    path: str | os.PathLike[str],
    *,
    version: int = 1,
    build: Callable[[], Any] | None = None,
    autocast: str | None = None,
    batch: int | None = None,
) -> Model:
    """Declare a model in a definition file (relative ``path``: next to the file)::

    net = model("net", "shot_model.pt", version=1)            # TorchScript
    net = model("net", "net.pth", version=1, build=MyNet)      # state_dict + class

    @feature(entity="shot", output=pa.list_(pa.float32(), 32), models=[net], batch=32)
    def embedding(shots, net):
        return net(frames_of(shots))   # numpy in, numpy out, on the worker's device
    """
    import sys

    caller = sys._getframe(1).f_globals.get("__file__")
    base = str(Path(caller).resolve().parent) if caller else ""
    return Model(str(name), str(path), version, build, autocast, batch, base)

"""The connector interface: one replica of one dataset in one target system.

A new target is a subclass of :class:`Connector` registered with :func:`register` (and
imported by :mod:`amberlite.connectors.manager`, which keeps replicas in step with commits).
"""

from __future__ import annotations

import abc
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from amberlite.catalog import Catalog
from amberlite.errors import ReplicaError
from amberlite.memo.key import MemoKey

DIGEST = "sha256"  # of every saved index file, recorded in its manifest


class ReplicaDamaged(ReplicaError):
    """A replica failed an integrity check (its saved files, its commit id, or what it holds
    against the stored values). Searches fall back to the exact kernel, commits skip it, and
    ``amberlite replicate rebuild FEATURE`` repairs it."""

    def __init__(self, key: MemoKey, target: str, reason: str) -> None:
        self.key, self.target, self.reason = key, target, reason
        super().__init__(f"{target} index of {key.label} damaged ({reason}); {self.hint}")

    @property
    def hint(self) -> str:
        return f"run `amberlite replicate rebuild {self.key.label}`"


def file_digest(path: Path) -> str:
    """``"sha256:<hex>"`` of a file, read in chunks (never the whole file in memory)."""
    with open(path, "rb") as f:
        return f"{DIGEST}:{hashlib.file_digest(f, DIGEST).hexdigest()}"


# -- the connector interface --------------------------------------------------------------------
class Connector(abc.ABC):
    """One replica of one dataset in one target.

    Contract: ``apply`` upserts ``(entity_id, value)`` rows (a value equal to the replicated
    one is a no-op), ``delete`` removes entities (unknown ids are ignored), ``search`` returns
    for each query vector the ``k`` best entity ids and their scores (higher is more similar;
    shorter rows padded with ``None`` / ``nan``), ``entity_ids`` the live ids, ``count`` their
    number. ``save(file_id)`` makes the state durable *together with* the commit id it reflects,
    atomically; ``load`` returns False when nothing was saved yet. ``last_file_id`` is the id
    of the last saved or loaded state; ``applied_file_id`` that of the state in memory (ahead
    of ``last_file_id`` while a save is deferred).

    Integrity: ``check_saved`` says why the persisted state cannot be trusted (None when it
    can, or when nothing is saved) by reading only the persisted files, so that a target's
    loader never sees a file that failed its checks; ``load`` raises :class:`ReplicaDamaged`
    for the same reasons. A search that finds the target disagreeing with the stored values
    sets ``damage``; the manager then treats the replica as damaged until it is rebuilt.
    """

    name: str = ""

    def __init__(self, root: Path, catalog: Catalog, key: MemoKey, dim: int, options: dict):
        self.root = root
        self.catalog = catalog
        self.key = key
        self.dim = dim
        self.options = self.check_options(options)
        self.last_file_id = 0
        self.applied_file_id = 0
        self.recorded_file_id = -1  # what this process last wrote to replicas.last_file_id
        self.unsaved_rows = 0  # rows applied since the last save (the replay a crash costs)
        self.saved_at = time.monotonic()
        self.damage: str | None = None  # set when the target disagrees with the stored values

    @classmethod
    def check_options(cls, options: dict) -> dict:
        """Validated options with defaults filled in; raises ReplicaError."""
        return dict(options)

    @abc.abstractmethod
    def apply(self, batch: pa.Table) -> int:
        """Upsert rows (entity_id, value); returns how many were inserted or changed."""

    @abc.abstractmethod
    def delete(self, entity_ids: Sequence[str]) -> int:
        """Remove entities; returns how many were live."""

    @abc.abstractmethod
    def search(
        self, vectors: np.ndarray, k: int, ef: int | None = None, allowed: set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(q, k) object array of the best entity ids per query row (None-padded) and (q, k)
        float32 scores (higher is better, nan-padded); ``allowed`` restricts the candidates."""

    @abc.abstractmethod
    def entity_ids(self) -> set[str]:
        """Ids of the live (searchable) entities."""

    def count(self) -> int:
        return len(self.entity_ids())

    @abc.abstractmethod
    def vectors(self, entity_ids: Sequence[str]) -> np.ndarray:
        """The replicated vectors of live entities, in the given order (as the target keeps
        them: normalized for cosine)."""

    def kept(self, mat: np.ndarray) -> np.ndarray:
        """Stored values as :meth:`vectors` returns them (normalized for cosine)."""
        return mat

    def check_saved(self) -> str | None:
        """Why the persisted state cannot be trusted, or None (also when nothing is saved)."""
        return None

    @abc.abstractmethod
    def save(self, file_id: int) -> None:
        """Persist the state as of commit ``file_id`` atomically."""

    @abc.abstractmethod
    def load(self) -> bool:
        """Load the persisted state; False when there is none."""

    @abc.abstractmethod
    def drop(self) -> None:
        """Remove everything persisted (for a rebuild)."""

    @abc.abstractmethod
    def saved_file_id(self) -> int:
        """The commit id of the persisted state (0 when none), read without loading it."""

    @classmethod
    @abc.abstractmethod
    def saved_count(cls, root: Path, key: MemoKey, dim: int) -> int:
        """Live rows of the persisted state, read without loading it."""

    @property
    def space(self) -> str:
        return str(self.options.get("space", "cosine"))


TARGETS: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available as a target under ``cls.name``."""
    TARGETS[cls.name] = cls
    return cls


def replica_dir(root: Path, key: MemoKey) -> Path:
    """``<store>/replicas/<feature>@<version>/<params_key>`` (names are checked by MemoKey)."""
    return Path(root) / "replicas" / f"{key.feature}@{key.version}" / key.params_key

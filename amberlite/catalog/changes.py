"""What each catalog commit changed: a small append-only journal next to the catalog.

A writer declares what its transaction changes as *keys* (``catalog.write(touches=...)``);
the catalog appends them to ``catalog.changes``, one line per transaction, under the
exclusive lock and before the commit, so a crash between the two leaves only an extra
invalidation. A reader learns what changed since it last looked from a ``stat`` and the
journal's new tail (no DuckDB): an answer that depends on keys none of which was touched since
it was computed is still the answer. Keys:

- ``*``: anything (the default of an undeclared write; it invalidates every answer);
- ``assets``: the assets table (ingest, names); ``schema``: features, entity and annotation
  types, definitions;
- ``feature:NAME``: the values of a feature (any version): its memo files, failures, claims;
- ``entities:TYPE``: the spans of an entity type (written with their segmenter's values);
- ``annotations:TYPE``: annotations of a type, their history and model runs;
- anything else (``runs``, ``replicas``, ``triggers``): bookkeeping no query answer reads.

The file starts with a header line holding a random epoch. When it grows past
``COMPACT_BYTES`` a writer replaces it with a new epoch; a reader that sees another epoch (or
a shorter file) cannot know what changed and drops everything, as for a ``*``.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

EVERYTHING = "*"
ASSETS = "assets"
SCHEMA = "schema"
CLAIMS = "claims"  # work in progress: no answer reads it
RUNS = "runs"
HEADER = b"amberlite-changes "
COMPACT_BYTES = 256 * 1024
_KEY = re.compile(r"[^\s]+")


def feature_key(name: str) -> str:
    return f"feature:{quote(name, safe='')}"


def entities_key(entity_type: str) -> str:
    return f"entities:{quote(entity_type, safe='')}"


def annotations_key(type_name: str) -> str:
    return f"annotations:{quote(str(type_name), safe='')}"


def normalize(touches: Iterable[str] | str) -> tuple[str, ...]:
    """The keys of ``touches`` (a key or several), each one word (spaces would split it)."""
    keys = (touches,) if isinstance(touches, str) else tuple(touches)
    if not keys:
        return ()
    out = []
    for k in keys:
        if not isinstance(k, str) or not _KEY.fullmatch(k):
            raise ValueError(f"a change key is one word of text, not {k!r}")
        out.append(k)
    return tuple(out)


def create(path: Path) -> None:
    """Start the journal when there is none (atomically: a journal that another process
    created meanwhile is kept)."""
    if path.exists():
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_bytes(HEADER + secrets.token_hex(8).encode() + b"\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def append(path: Path, keys: tuple[str, ...]) -> None:
    """Record one transaction's keys (call it under the catalog's exclusive lock, before the
    commit). Compacts the journal (a new epoch) when it is over ``COMPACT_BYTES``."""
    line = (" ".join(keys) + "\n").encode()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size > COMPACT_BYTES or size == 0:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(HEADER + secrets.token_hex(8).encode() + b"\n" + line)
        os.replace(tmp, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class Journal:
    """One process's view of ``catalog.changes``: which keys changed since a position.

    Positions are counts of transactions this reader has seen (a reset counts as one that
    touched ``*``); they are only comparable within one :class:`Journal`.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "catalog.changes"; create(p)
        >>> j = Journal(p); at = j.position()
        >>> append(p, ("feature:busy",))
        >>> j.changed_since(at, {"feature:shots"}), j.changed_since(at, {"feature:busy"})
        (False, True)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stat: tuple | None = None
        self._epoch: bytes | None = None
        self._offset = 0  # bytes of complete lines read from the current epoch's file
        self._seen = 0
        self._last: dict[str, int] = {}

    def position(self) -> int:
        """The current position, after reading what was appended since the last look."""
        with self._lock:
            self._refresh()
            return self._seen

    def changed_since(self, position: int, keys: Iterable[str]) -> bool:
        """True when a transaction recorded after ``position`` touched one of ``keys`` (or
        ``*``)."""
        with self._lock:
            self._refresh()
            last = self._last
            if last.get(EVERYTHING, 0) > position:
                return True
            return any(last.get(k, 0) > position for k in keys)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._epoch is not None:
                self._reset(None, None)
            return
        stat = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if stat == self._stat:
            return
        with open(self.path, "rb") as f:
            head = f.readline()
            if not head.startswith(HEADER) or not head.endswith(b"\n"):
                return  # being created: nothing to read yet (look again next time)
            epoch = head[len(HEADER) : -1]
            if epoch != self._epoch or st.st_size < self._offset:
                self._reset(epoch, len(head))
            f.seek(self._offset)
            tail = f.read()
        end = tail.rfind(b"\n") + 1  # complete lines only: a line being written waits
        for line in tail[:end].splitlines():
            self._seen += 1
            for key in line.decode("utf-8", "replace").split():
                self._last[key] = self._seen
        self._offset += end
        self._stat = stat if end == len(tail) else None

    def _reset(self, epoch: bytes | None, offset: int | None) -> None:
        """Another epoch (a compaction, or a first look): what changed is unknown."""
        self._seen += 1
        self._last = {EVERYTHING: self._seen}
        self._epoch, self._offset, self._stat = epoch, offset or 0, None

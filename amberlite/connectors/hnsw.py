"""The ``hnsw`` target: an hnswlib index per feature@version@params.

Files, in ``<store>/replicas/<feature>@<v>/<params_key>/``: ``hnsw-<file_id>.bin`` is hnswlib's
own serialization, written once and fsynced; ``hnsw.json`` (the manifest: the commit id the
index reflects, space, dim, M, deleted labels, the name of the ``.bin`` file, its size and its
sha256) is written
aside and renamed over the old one, so the index and its commit id change together; older
``.bin`` files are removed after the rename. Entity ids map to integer labels through the
catalog table ``replica_labels``; a label is written there before the index that uses it is
saved, so an index never holds a label the catalog cannot name. Inserting a row is one
``add_items`` (capacity grows geometrically with ``resize_index``); an update re-adds the same
label (hnswlib replaces the vector in place); a delete is ``mark_deleted``.

Integrity: hnswlib's loader trusts its input (a damaged file can crash the process), so
``load`` hands it a file only after the manifest parses and the file's size and sha256 match
the manifest; any failure (and an index holding labels the catalog lacks, or another count than
the manifest's) raises :class:`~amberlite.connectors.base.ReplicaDamaged`.

Scores: cosine similarity (``space="cosine"``), inner product (``"ip"``), or the negated
squared L2 distance (``"l2"``) — higher is always more similar.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from amberlite.catalog import Catalog
from amberlite.connectors.base import (
    Connector,
    ReplicaDamaged,
    file_digest,
    register,
    replica_dir,
)
from amberlite.core.vectors import as_matrix
from amberlite.errors import ReplicaError
from amberlite.memo.key import MemoKey
from amberlite.memo.store import ENTITY_ID, VALUE, fsync_path

MANIFEST = "hnsw.json"
_BIN_RE = re.compile(r"hnsw-[0-9]+-[0-9]+\.bin")
FORMAT = 3  # 3: the index file's size and sha256 are in the manifest
SPACES = ("cosine", "l2", "ip")
DEFAULTS = {"space": "cosine", "M": 16, "ef_construction": 200, "ef": 64}
INITIAL_CAPACITY = 1024


def read_header(path: Path) -> dict | None:
    """The manifest of a saved index (``path`` is the manifest or its directory), or None when
    there is no valid one."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path.parent / MANIFEST if path.suffix else path / MANIFEST
    try:
        head = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        return None
    return head


@register
class HnswConnector(Connector):
    """An hnswlib HNSW index over one dataset (see the module docstring)."""

    name = "hnsw"

    def __init__(self, root: Path, catalog: Catalog, key: MemoKey, dim: int, options: dict):
        super().__init__(root, catalog, key, dim, options)
        self.dir = replica_dir(root, key)
        self.path = self.dir / MANIFEST
        self.threads = int(self.options.get("num_threads", os.cpu_count() or 1))
        self._reset()

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def check_options(cls, options: dict) -> dict:
        unknown = set(options) - set(DEFAULTS) - {"num_threads"}
        if unknown:
            raise ReplicaError(f"unknown hnsw option(s): {', '.join(sorted(unknown))}")
        opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        if opts["space"] not in SPACES:
            raise ReplicaError(
                f"hnsw space must be one of {', '.join(SPACES)}, not {opts['space']!r}"
            )
        for name, lo, hi in (("M", 2, 128), ("ef_construction", 4, 10_000), ("ef", 1, 100_000)):
            v = opts[name]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ReplicaError(f"hnsw option {name} must be an integer in [{lo}, {hi}]")
        return opts

    # -- state --------------------------------------------------------------------------------
    def _reset(self) -> None:
        import hnswlib  # loaded by the first replica opened, not by every store

        self.index = hnswlib.Index(space=self.space, dim=self.dim)
        self.index.init_index(
            max_elements=INITIAL_CAPACITY,
            ef_construction=self.options["ef_construction"],
            M=self.options["M"],
            random_seed=100,
        )
        self.index.set_ef(self.options["ef"])
        self.ids_by_label: list[str] = []
        self.label_of: dict[str, int] = {}
        self.present: set[int] = set()
        self.deleted: set[int] = set()
        self._id_array: np.ndarray | None = None
        self.last_file_id = self.applied_file_id = 0

    def _load_labels(self) -> None:
        with self.catalog.read() as con:
            t = con.sql(
                """SELECT entity_id, label FROM replica_labels WHERE feature = $f
                   AND version = $v AND params_key = $p AND target = $t ORDER BY label""",
                params=dict(zip("fvpt", [*self.key.sql_args(), self.name])),
            ).to_arrow_table()
        ids = t.column(0).to_pylist()
        labels = t.column(1).to_numpy()
        if len(labels) and not np.array_equal(labels, np.arange(len(labels))):
            raise ReplicaDamaged(self.key, self.name, "replica labels are not dense")
        self.ids_by_label = ids
        self.label_of = {e: i for i, e in enumerate(ids)}
        self._id_array = None

    def check_saved(self) -> str | None:
        return self._check_head()[1]

    def _check_head(self) -> tuple[dict | None, str | None]:
        """(manifest, None) when the saved index can be handed to hnswlib; (None, None) when
        nothing is saved; (manifest or None, reason) when it must not be."""
        if not self.path.exists():
            return None, None
        head = read_header(self.path)
        if head is None:
            return None, "manifest does not parse, or is of an older format without checksum"
        if head.get("dim") != self.dim or head.get("space") != self.space:
            return head, "saved index has another dim/space"
        deleted = head.get("deleted")
        fields = (head.get("last_file_id"), head.get("count"))
        fields += tuple(deleted) if isinstance(deleted, list) else (None,)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fields):
            return head, "manifest fields are not counts"
        name = str(head.get("index", ""))
        if not _BIN_RE.fullmatch(name):
            return head, f"bad index file name {name!r}"
        file = self.dir / name
        size, digest = head.get("size"), head.get("checksum")
        if not isinstance(size, int) or not isinstance(digest, str):
            return head, "manifest has no checksum"
        try:
            actual = file.stat().st_size
        except OSError:
            return head, "index file missing"
        if actual != size:
            return head, f"index file is {actual} bytes, the manifest says {size}"
        if file_digest(file) != digest:
            return head, "checksum mismatch"
        return head, None

    def load(self) -> bool:
        self._reset()
        self._load_labels()
        head, reason = self._check_head()
        if reason is not None:
            raise ReplicaDamaged(self.key, self.name, reason)
        if head is None:
            return False
        import hnswlib

        index = hnswlib.Index(space=self.space, dim=self.dim)
        try:
            index.load_index(str(self.dir / head["index"]), max_elements=0)
        except RuntimeError as e:
            raise ReplicaDamaged(self.key, self.name, f"hnswlib cannot load it: {e}") from e
        index.set_ef(self.options["ef"])
        present = set(index.get_ids_list())
        deleted = set(head.get("deleted", []))
        if max(present, default=-1) >= len(self.ids_by_label) or min(present, default=0) < 0:
            raise ReplicaDamaged(self.key, self.name, "index holds labels the catalog lacks")
        live = len(present) - len(deleted & present)
        if live != head.get("count"):
            raise ReplicaDamaged(
                self.key, self.name, f"index holds {live} live rows, its manifest {head['count']}"
            )
        self.index, self.present, self.deleted = index, present, deleted
        self.last_file_id = self.applied_file_id = int(head["last_file_id"])
        return True

    def save(self, file_id: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"hnsw-{int(file_id)}-{os.getpid()}.bin"
        head = {
            "format": FORMAT,
            "last_file_id": int(file_id),
            "space": self.space,
            "dim": self.dim,
            "M": self.options["M"],
            "ef_construction": self.options["ef_construction"],
            "count": self.count(),
            "deleted": sorted(self.deleted),
            "index": name,
        }
        aside = self.dir / f".{MANIFEST}.{os.getpid()}.tmp"
        try:
            self.index.save_index(str(self.dir / name))
            fsync_path(self.dir / name)
            head["size"] = (self.dir / name).stat().st_size
            head["checksum"] = file_digest(self.dir / name)
            with open(aside, "w") as f:
                json.dump(head, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(aside, self.path)
            fsync_path(self.dir)
        except BaseException:
            (self.dir / name).unlink(missing_ok=True)
            raise
        finally:
            aside.unlink(missing_ok=True)
        for old in self.dir.glob("hnsw-*.bin"):  # callers hold the replica's file lock
            if old.name != name:
                old.unlink(missing_ok=True)
        self.last_file_id = int(file_id)

    def saved_file_id(self) -> int:
        head = read_header(self.path)
        return int(head["last_file_id"]) if head else 0

    @classmethod
    def saved_count(cls, root: Path, key: MemoKey, dim: int) -> int:
        head = read_header(replica_dir(root, key) / MANIFEST)
        return int(head["count"]) if head else 0

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)
        for old in self.dir.glob("hnsw-*.bin"):
            old.unlink(missing_ok=True)
        self._reset()

    # -- changes ------------------------------------------------------------------------------
    def _live(self, label: int) -> bool:
        return label in self.present and label not in self.deleted

    def kept(self, mat: np.ndarray) -> np.ndarray:
        return self._normalized(np.asarray(mat, np.float32))

    def _normalized(self, mat: np.ndarray) -> np.ndarray:
        if self.space != "cosine":
            return mat
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        return mat / (norms + 1e-30)

    def apply(self, batch: pa.Table) -> int:
        ids = batch.column(ENTITY_ID).to_pylist()
        if not ids:
            return 0
        mat = as_matrix(batch.column(VALUE), self.dim)
        labels = np.array([self.label_of.get(e, -1) for e in ids], dtype=np.int64)
        change = np.ones(len(ids), dtype=bool)
        live = np.array([lb >= 0 and self._live(int(lb)) for lb in labels], dtype=bool)
        if live.any():
            old = self.index.get_items(labels[live], return_type="numpy")
            same = np.all(np.abs(old - self._normalized(mat[live])) <= 1e-6, axis=1)
            change[np.flatnonzero(live)[same]] = False
        new = labels < 0
        if new.any() and self._catalog_labels() > len(self.ids_by_label):
            self._load_labels()  # another process (killed before its save) named some ids
            labels = np.array([self.label_of.get(e, -1) for e in ids], dtype=np.int64)
            new = labels < 0
        if new.any():
            start = len(self.ids_by_label)
            labels[new] = np.arange(start, start + int(new.sum()))
            fresh = [ids[i] for i in np.flatnonzero(new)]
            self._write_labels(fresh, start)
            self.ids_by_label.extend(fresh)
            self.label_of.update((e, start + i) for i, e in enumerate(fresh))
            self._id_array = None
        if not change.any():
            return 0
        todo = labels[change]
        undeleted = [int(lb) for lb in todo if int(lb) in self.deleted]
        if undeleted:
            self._mark_catalog(undeleted, deleted=False)
        need = len(self.present | set(todo.tolist()))
        cap = self.index.get_max_elements()
        if need > cap:
            self.index.resize_index(max(need, 2 * cap))
        self.index.add_items(mat[change], todo, num_threads=self.threads)
        self.present.update(todo.tolist())
        self.deleted.difference_update(undeleted)
        return int(change.sum())

    def delete(self, entity_ids: Sequence[str]) -> int:
        labels = [self.label_of[e] for e in entity_ids if e in self.label_of]
        labels = [lb for lb in labels if self._live(lb)]
        if not labels:
            return 0
        self._mark_catalog(labels, deleted=True)
        for lb in labels:
            self.index.mark_deleted(lb)
        self.deleted.update(labels)
        return len(labels)

    def _write_labels(self, ids: list[str], start: int) -> None:
        rows = pa.table(
            {
                "entity_id": pa.array(ids, pa.string()),
                "label": pa.array(np.arange(start, start + len(ids)), pa.int64()),
            }
        )
        with self.catalog.write() as con:
            con.register("new_labels", rows)
            con.execute(
                """INSERT INTO replica_labels SELECT ?, ?, ?, ?, entity_id, label, FALSE
                   FROM new_labels""",
                [*self.key.sql_args(), self.name],
            )
            con.unregister("new_labels")

    def _catalog_labels(self) -> int:
        rows = self.catalog.query(
            """SELECT count(*) FROM replica_labels WHERE feature = ? AND version = ?
               AND params_key = ? AND target = ?""",
            [*self.key.sql_args(), self.name],
        )
        return int(rows[0][0])

    def _mark_catalog(self, labels: list[int], deleted: bool) -> None:
        with self.catalog.write() as con:
            con.execute(
                """UPDATE replica_labels SET deleted = ? WHERE feature = ? AND version = ?
                   AND params_key = ? AND target = ? AND label IN (SELECT unnest(?::BIGINT[]))""",
                [deleted, *self.key.sql_args(), self.name, labels],
            )

    # -- reading ------------------------------------------------------------------------------
    def entity_ids(self) -> set[str]:
        return {self.ids_by_label[lb] for lb in self.present - self.deleted}

    def count(self) -> int:
        return len(self.present) - len(self.deleted & self.present)

    def vectors(self, entity_ids: Sequence[str]) -> np.ndarray:
        labels = [self.label_of[e] for e in entity_ids]
        if not labels:
            return np.zeros((0, self.dim), np.float32)
        return self.index.get_items(labels, return_type="numpy")

    def _ids(self) -> np.ndarray:
        if self._id_array is None or len(self._id_array) != len(self.ids_by_label):
            self._id_array = np.array(self.ids_by_label + [None], dtype=object)
        return self._id_array

    def search(
        self, vectors: np.ndarray, k: int, ef: int | None = None, allowed: set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        live = self.count()
        filt, threads = None, self.threads
        if allowed is not None:
            ok = {self.label_of[e] for e in allowed if e in self.label_of}
            ok = {lb for lb in ok if self._live(lb)}
            live = len(ok)
            filt, threads = ok.__contains__, 1
        kk = min(k, live)
        if kk <= 0 or len(q) == 0:
            return np.full((len(q), k), None, object), np.full((len(q), k), np.nan, np.float32)
        ef_q = max(ef or self.options["ef"], kk)
        while True:
            self.index.set_ef(ef_q)
            try:
                labels, dist = self.index.knn_query(q, k=kk, num_threads=threads, filter=filt)
                break
            except RuntimeError:  # fewer than kk reachable at this ef: widen the search
                if ef_q >= live:
                    raise ReplicaError(f"{self.key.label}: hnsw search found < {kk} rows") from None
                ef_q = min(live, ef_q * 4)
            finally:
                self.index.set_ef(self.options["ef"])
        labels = labels.astype(np.int64)
        scores = -dist if self.space == "l2" else 1.0 - dist
        if kk < k:
            labels = np.pad(labels, ((0, 0), (0, k - kk)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=np.nan)
        ids = self._ids()[np.where(labels < 0, len(self.ids_by_label), labels)]
        return ids, scores.astype(np.float32)

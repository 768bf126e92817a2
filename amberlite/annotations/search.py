"""Ranked full-text search over a text column of an annotation type, with tantivy.

``a.text MATCHES 'black glove'`` finds the annotations whose text holds every word (tantivy's
default tokenizer: split on non-alphanumerics, lower-cased), ranked by BM25 (the
``relevance`` column). The index of a (type, column) lives under
``<store>/annotations/.search/`` and is named by a digest of what it indexes (the model runs
in view and the human rows' count and last change), so an unchanged type reuses it and any
write leads the next search to build a fresh one. Building writes a private folder and
renames it into place; a reader never sees a half-built index. Query words reach tantivy as
terms (``+word``) of its query language, never as text that could change the query.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

WORD = re.compile(r"\w+", re.UNICODE)
KEEP = 4  # index folders kept per (type, column): older ones are removed


def words(query: str) -> list[str]:
    """The words of a MATCHES query, lower-cased.

    Example:
        >>> words("Black  glove, 'quoted'!")
        ['black', 'glove', 'quoted']
    """
    return [w.lower() for w in WORD.findall(query)]


def index_dir(root: Path, type_name: str, column: str, stamp: str) -> Path:
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:20]
    return root / "annotations" / ".search" / f"{type_name}.{column}.{digest}"


def ensure_index(
    folder: Path, rows: Callable[[], list[tuple[str, str]]], progress: bool = False
) -> Path:
    """The index in ``folder``, built from ``rows()`` (id, text) when missing."""
    import tantivy

    if (folder / "READY").exists():
        return folder
    tmp = folder.parent / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        index = tantivy.Index(_schema(), path=str(tmp))
        writer = index.writer(heap_size=128_000_000, num_threads=1)
        for i, (ident, text) in enumerate(rows()):
            writer.add_document(tantivy.Document(id=ident, text=text))
            if progress and i and i % 200_000 == 0:
                import sys

                print(f"text index: {i} annotations", file=sys.stderr, flush=True)
        writer.commit()
        writer.wait_merging_threads()
        (tmp / "READY").write_text("ok")
        try:
            os.rename(tmp, folder)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(folder)
    return folder


def _prune(folder: Path) -> None:
    prefix = folder.name.rsplit(".", 1)[0] + "."
    others = sorted(
        (p for p in folder.parent.glob(prefix + "*") if p != folder and p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    for p in others[: max(0, len(others) - KEEP + 1)]:
        shutil.rmtree(p, ignore_errors=True)


def _schema():
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("text", stored=False)
    return sb.build()


def search_empty() -> pa.Table:
    return pa.table({"id": pa.array([], pa.string()), "relevance": pa.array([], pa.float64())})


_OPEN: dict[tuple[int, str], object] = {}  # (pid, folder) -> its opened index (a ready folder
# never changes)


def _open(folder: Path):
    import tantivy

    key = (os.getpid(), str(folder))
    index = _OPEN.get(key)
    if index is None:
        index = tantivy.Index(_schema(), path=str(folder))
        index.reload()
        if len(_OPEN) >= 4 * KEEP:
            _OPEN.clear()
        _OPEN[key] = index
    return index


def search(folder: Path, query: str) -> pa.Table:
    """(id, relevance) of every indexed annotation holding all the words of ``query`` (the
    opened index is kept: a ready folder is never written again)."""
    index = _open(folder)
    searcher = index.searcher()
    terms = words(query)
    if not terms or searcher.num_docs == 0:
        return search_empty()
    parsed = index.parse_query(" ".join(f"+{w}" for w in terms), ["text"])
    hits = searcher.search(parsed, limit=searcher.num_docs).hits
    ids = [searcher.doc(addr)["id"][0] for _, addr in hits]
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "relevance": pa.array([h[0] for h in hits], pa.float64()),
        }
    )

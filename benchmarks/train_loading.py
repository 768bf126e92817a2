"""Training-data loading: embeddings/s into torch tensors.

N memoized 512-float vectors (default 100,000) over "window" entities of a generated clip,
then one epoch read into torch tensors of 256 rows by:

* ``store.dataset`` (prefetch thread, exact batches) in the main process, with and without
  the id lists, and through a DataLoader with 2 workers;
* a naive row-by-row loader over the same store: ``store.get`` once, then a map-style
  Dataset returning one row as a tensor and DataLoader's default collation (target: the
  dataset is >= 5x faster);
* raw pyarrow over the same files: ``ParquetFile.iter_batches`` converted to tensors in a
  plain loop, no prefetch, no re-batching (target: the dataset is within 1.2x);
* ``store.dataset(query)`` of ``SELECT id, vec FROM windows``: the one-off cost of running
  the query into its Parquet file, then an epoch over that file.

    python -m benchmarks.train_loading [--n 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

import amberlite
from amberlite.dataset import to_torch
from benchmarks.windows import render_clip, window_store

FEATURES = """
@feature(entity="window", output=pa.list_(pa.float32(), 512), batch=8192)
def vec(windows):
    rng = np.random.default_rng(len(windows))
    v = rng.standard_normal((len(windows), 512), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
"""
BATCH = 256


class RowByRow(Dataset):
    """The naive loader: one Python row at a time, collated by the DataLoader."""

    def __init__(self, store: amberlite.Store) -> None:
        df = store.get("vec", compute=False)
        self.ids = df["entity_id"].to_list()
        self.values = df["vec"].to_list()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return {"entity_id": self.ids[i], "vec": torch.tensor(self.values[i])}


def epoch(batches) -> int:
    n = 0
    for b in batches:
        n += b["vec"].shape[0]
    return n


def raw_pyarrow(files: list[str], ids: bool) -> int:
    n = 0
    cols = None if ids else ["value"]
    for f in files:
        for rb in pq.ParquetFile(f).iter_batches(batch_size=BATCH, columns=cols):
            if ids:
                rb.column("entity_id").to_pylist()
                rb.column("asset_id").to_pylist()
            n += to_torch(rb.column("value")).shape[0]
    return n


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="amberlite-train-"))
    clip = root / "clip.mp4"
    render_clip(clip, 600, 64, 36)
    store = window_store(root, clip, args.n, FEATURES)
    t = time.perf_counter()
    store.materialize("vec", progress=False)
    print(f"computed {args.n} vectors of 512 float32 in {time.perf_counter() - t:.1f} s")
    files = store.value_files("vec")
    print(f"{len(files)} Parquet files, {sum(os.path.getsize(f) for f in files) / 2**20:.0f} MiB")

    def ds(**kw):
        return store.dataset("vec", batch_size=BATCH, compute=False, **kw)

    query = "SELECT id, vec FROM windows"
    t = time.perf_counter()
    qfiles = store.dataset(query, compute=False).files
    print(f"store.dataset({query!r}): result file written in {time.perf_counter() - t:.2f} s")
    qds = lambda **kw: store.dataset(query, batch_size=BATCH, compute=False, **kw)  # noqa: E731
    assert qds().files == qfiles  # reused: the store did not change
    naive = lambda: epoch(DataLoader(RowByRow(store), batch_size=BATCH))  # noqa: E731
    rows = [
        ("raw pyarrow (value only)", lambda: raw_pyarrow(files, ids=False), "raw0"),
        ("store.dataset ids=False", lambda: epoch(ds(ids=False)), "raw0"),
        ("raw pyarrow (+ id lists)", lambda: raw_pyarrow(files, ids=True), "raw1"),
        ("store.dataset", lambda: epoch(ds()), "raw1"),
        ("store.dataset(query), file reused", lambda: epoch(qds()), "raw1"),
        (
            "store.dataset, DataLoader 2 workers",
            lambda: epoch(DataLoader(ds(), batch_size=None, num_workers=2)),
            "raw1",
        ),
        ("naive row-by-row DataLoader", naive, "naive"),
    ]
    results: dict[str, tuple[float, int]] = {}
    for label, fn, _ in rows:
        results[label] = timed(fn, 1 if "naive" in label else args.repeat)
    base = {
        "raw0": results["raw pyarrow (value only)"][0],
        "raw1": results["raw pyarrow (+ id lists)"][0],
        "naive": results["naive row-by-row DataLoader"][0],
    }
    print(f"\n| loader ({args.n} x 512 float32, batch {BATCH}) | s | embeddings/s | "
          "vs raw pyarrow | vs naive |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for label, _fn, peer in rows:
        secs, n = results[label]
        assert n == args.n, (label, n)
        raw = base["raw1" if peer == "naive" else peer]
        print(
            f"| {label} | {secs:.3f} | {n / secs:,.0f} | {secs / raw:.2f}x | "
            f"{base['naive'] / secs:.1f}x faster |"
        )


if __name__ == "__main__":
    main()

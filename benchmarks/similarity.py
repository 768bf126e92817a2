"""Similarity search: the HNSW replica connector against exact torch search, same machine.

    .venv/bin/python -m benchmarks.similarity [--sizes 100000,1000000] [--big-M 12]
        [--big-efc 80] [--queries 1000] [--skip-match]

Data (unit vectors, 512 float32), three kinds:

* ``embedding``: like a learned embedding: a point of a 32-dimensional latent space (a mixture
  of 2,000 Gaussian clusters) mapped linearly into 512 dimensions, plus isotropic noise of a
  tenth of the signal; real image/shot embeddings have intrinsic dimension of this order.
  The targets are judged on this kind.
* ``random``: uniform on the sphere. Every point is nearly equidistant from every other, so
  "the 10 nearest" is decided by noise: the worst case for any graph index (reported, not a
  target).
* ``iso-clusters``: clusters of 100 rows whose isotropic noise is as large as the centre: the
  same near-equidistance inside each cluster (reported, not a target).

For each size and kind: build time of the index through ``HnswConnector.apply`` (2 threads),
then per ``ef`` recall@10 against exact search and queries/s against exact torch search
(blocked matmul + topk, 2 threads, the same 1,000 queries); then the cost of adding 1,000 rows
to the built index: the insert a commit pays, the full save, and the save's cost amortized per
1,000 rows under the store's save policy (a save every ``max(SAVE_ROWS, SAVE_FRACTION x
rows)`` applied rows). Last, the cross-asset match cut (50 assets x 2,000 shots):
``kernel.exact_pairs`` against the index path of ``similarity.match``, time and overlap of
the top-k pairs. Targets: recall@10 >= 0.95 at >= 50x the exact queries/s at 10^6 rows;
adding 1,000 rows to a 10^6 index in < 1 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from amberlite.catalog import Catalog
from amberlite.connectors.hnsw import HnswConnector
from amberlite.connectors.manager import ReplicaManager
from amberlite.memo.key import MemoKey
from amberlite.search.kernel import exact_knn, exact_pairs
from amberlite.search.similarity import index_pairs

DIM = 512
EFS = (16, 32, 64, 128, 256)
KINDS = ("embedding", "random", "iso-clusters")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


LATENT = 32


def make(kind: str, n: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n data rows and q query rows of one kind (see the module docstring); the same seed
    gives the same space (mapping, clusters) for any n."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return unit(rng.standard_normal((n, DIM), np.float32)), unit(
            rng.standard_normal((q, DIM), np.float32)
        )
    if kind == "embedding":
        space = np.random.default_rng(1234)
        proj = space.standard_normal((LATENT, DIM), np.float32) / np.sqrt(LATENT)
        centers = space.standard_normal((2000, LATENT), np.float32)
        out = []
        for m in (n, q):
            x = np.empty((m, DIM), np.float32)
            for s in range(0, m, 100_000):
                e = min(m, s + 100_000)
                z = centers[rng.integers(0, len(centers), e - s)]
                z += 0.5 * rng.standard_normal((e - s, LATENT), np.float32)
                x[s:e] = unit(z @ proj)
                x[s:e] += (0.1 / np.sqrt(DIM)) * rng.standard_normal((e - s, DIM), np.float32)
            out.append(unit(x))
        return out[0], out[1]
    centers = unit(rng.standard_normal((max(1, n // 100), DIM), np.float32))
    out = []
    for m in (n, q):
        x = np.empty((m, DIM), np.float32)
        for s in range(0, m, 100_000):
            e = min(m, s + 100_000)
            c = rng.integers(0, len(centers), e - s)
            x[s:e] = centers[c] + 0.05 * rng.standard_normal((e - s, DIM), np.float32)
        out.append(unit(x))
    return out[0], out[1]


def batch(ids: list[str], x: np.ndarray) -> pa.Table:
    values = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIM)
    return pa.table({"entity_id": pa.array(ids, pa.string()), "value": values})


def connector(root: Path, name: str, M: int, efc: int) -> HnswConnector:
    key = MemoKey(name.replace("-", "_"), 1, "0" * 16)
    c = HnswConnector(root, Catalog(root), key, DIM, {"M": M, "ef_construction": efc})
    c.threads = 2
    return c


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist()))
    return hits / truth.size


def bench_size(root: Path, kind: str, n: int, q: int, M: int, efc: int) -> list[str]:
    x, queries = make(kind, n, q)
    ids = [f"e{i}" for i in range(n)]
    c = connector(root, f"{kind}{n}", M, efc)
    _, build_s = timed(c.apply, batch(ids, x))
    (truth, _), exact_s = timed(exact_knn, x, queries, 10)
    exact_qps = q / exact_s
    rows = [
        f"| {kind} | {n:,} | M={M} efc={efc} | build {build_s:.1f} s | exact | 1.000 | "
        f"{exact_qps:,.0f} | 1.0x |"
    ]
    for ef in EFS:
        (found, _), s = timed(c.search, queries, 10, ef=ef)
        pos = np.vectorize(lambda e: int(e[1:]), otypes=[np.int64])(found)
        rows.append(
            f"| {kind} | {n:,} | | | ef={ef} | {recall(pos, truth):.3f} | {q / s:,.0f} | "
            f"{q / s / exact_qps:,.1f}x |"
        )
    add_x, _ = make(kind, 1000, 1, seed=1)
    (_, add_s) = timed(c.apply, batch([f"n{i}" for i in range(1000)], add_x))
    (_, save_s) = timed(c.save, 1)
    every = max(ReplicaManager.SAVE_ROWS, int(ReplicaManager.SAVE_FRACTION * c.count()))
    size = sum(p.stat().st_size for p in c.dir.glob("hnsw-*.bin"))
    rows.append(
        f"| {kind} | {n:,} | | | add 1,000 rows | insert {add_s:.3f} s | full save "
        f"{save_s:.2f} s ({size / 2**20:,.0f} MiB), every {every:,} rows: "
        f"{save_s * 1000 / every:.3f} s per 1,000 | {add_s + save_s * 1000 / every:.3f} s |"
    )
    print("\n".join(rows), flush=True)
    return rows


def bench_match(root: Path, k: int = 100) -> list[str]:
    """50 assets x 2,000 shots; shots of one asset share a look (asset offset)."""
    rng = np.random.default_rng(7)
    n_assets, per = 50, 2000
    looks = unit(rng.standard_normal((n_assets, DIM), np.float32))
    scenes = unit(rng.standard_normal((1000, DIM), np.float32))
    groups = np.repeat(np.arange(n_assets), per)
    x = unit(
        0.6 * looks[groups]
        + scenes[rng.integers(0, 1000, n_assets * per)]
        + 0.05 * rng.standard_normal((n_assets * per, DIM), np.float32)
    )
    ids = np.array([f"a{g}/{i}" for g, i in zip(groups, range(len(x)))], dtype=object)
    c = connector(root, "match", 16, 200)
    _, build_s = timed(c.apply, batch(ids.tolist(), x))
    (ea, eb, es), exact_s = timed(exact_pairs, x, k, groups, True)
    (ha, hb, hs, why), hnsw_s = timed(index_pairs, c, ids, groups, x, k, True, 64, None)
    exact_set = set(zip(ea.tolist(), eb.tolist()))
    overlap = len(exact_set & set(zip(ha.tolist(), hb.tolist()))) / max(1, len(exact_set))
    rows = [
        f"| match cut 50x2,000 TOP {k} ACROSS ASSETS | exact {exact_s:.1f} s | hnsw "
        f"{hnsw_s:.1f} s (+ build {build_s:.1f} s) | {exact_s / hnsw_s:.1f}x | overlap "
        f"{overlap:.3f} | {why} |"
    ]
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--big-M", type=int, default=12)
    ap.add_argument("--big-efc", type=int, default=80)
    ap.add_argument("--kinds", default="", help=f"comma list of {', '.join(KINDS)}")
    ap.add_argument("--skip-match", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dim {DIM}, float32")
    print("| data | rows | index | build | search | recall@10 | queries/s | vs exact |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            big = n > 200_000
            M, efc = (args.big_M, args.big_efc) if big else (16, 200)
            kinds = tuple(args.kinds.split(",")) if args.kinds else KINDS[:1] if big else KINDS
            for kind in kinds:
                bench_size(root, kind, n, args.queries, M, efc)
        if not args.skip_match:
            bench_match(root)


if __name__ == "__main__":
    main()

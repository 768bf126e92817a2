"""Match-cut benchmark: pair scoring speed against numpy and naive peers, and precision on
generated films with designed matches.

    .venv/bin/python -m benchmarks.match_cut

Part 1 scores every pair of N shots (clustered 512-d unit vectors for cosine; 32x18 binary
silhouettes for framing IoU), excluding adjacent shots (100 shots per asset), and keeps the
top 10: amberlite's blocked torch scorer against the same blocked algorithm in numpy
(``np.argpartition``) and, at N = 2,000, a Python loop over pairs. Targets on CPU: < 0.2 s
at 2,000 shots, < 5 s at 20,000. Part 2 runs the real pipeline (shots, dedup, match
features) on three generated films and reports precision@10 against the designed pairs.
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from amberlite.search.kernel import adjacent_pairs, exact_pairs, exact_pairs_numpy


class TopPairs(NamedTuple):
    i: np.ndarray
    j: np.ndarray
    score: np.ndarray


def _space(metric: str) -> str:
    return "ip" if metric == "cosine" else metric  # the vectors are unit rows already


def top_k_pairs(x, k, *, metric, groups, order) -> TopPairs:
    """The kernel match cutting, NEAREST and MATCH share (amberlite.search.kernel)."""
    ex = adjacent_pairs(groups, order)
    return TopPairs(*exact_pairs(x, k, groups, space=_space(metric), exclude=ex))


def top_k_pairs_numpy(x, k, *, metric, groups, order) -> TopPairs:
    ex = adjacent_pairs(groups, order)
    return TopPairs(*exact_pairs_numpy(x, k, groups, space=_space(metric), exclude=ex))


TOP = 10
SHOTS_PER_ASSET = 100


def clustered_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around n/20 random centres (like shots of recurring set-ups)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def silhouettes(n: int, seed: int = 0, grid: tuple[int, int] = (32, 18)) -> np.ndarray:
    """Binary masks of random discs on the framing grid, flattened."""
    rng = np.random.default_rng(seed)
    w, h = grid
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0, w, n), rng.uniform(0, h, n)
    r = rng.uniform(2, 7, n)
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    return (d2 <= r[:, None, None] ** 2).reshape(n, -1).astype(np.float32)


def numpy_blocked(x: np.ndarray, k: int, metric: str, groups, order, block_elems=1 << 23):
    """The torch scorer's algorithm in numpy: blocked products, argpartition, merge."""
    n = len(x)
    area = x.sum(axis=1)
    rows = max(1, block_elems // n)
    adj = np.nonzero((np.diff(order) == 1) & (groups[1:] == groups[:-1]))[0]  # (i, i + 1)
    best_s, best_i, best_j = np.empty(0, np.float32), np.empty(0, int), np.empty(0, int)
    for r0 in range(0, n - 1, rows):
        r1 = min(n, r0 + rows)
        s = x[r0:r1] @ x[r0:].T
        if metric == "iou":
            union = area[r0:r1, None] + area[None, r0:] - s
            s = np.where(union > 0, s / np.maximum(union, 1e-9), 0)
        s[np.tril(np.ones((r1 - r0, r1 - r0), bool)).nonzero()] = -np.inf
        ii = adj[(adj >= r0) & (adj < r1)]
        s[ii - r0, ii + 1 - r0] = -np.inf
        flat = s.ravel()
        part = np.argpartition(-flat, min(k, flat.size - 1))[:k]
        best_s = np.concatenate([best_s, flat[part]])
        best_i = np.concatenate([best_i, part // (n - r0) + r0])
        best_j = np.concatenate([best_j, part % (n - r0) + r0])
        top = np.argsort(-best_s, kind="stable")[:k]
        best_s, best_i, best_j = best_s[top], best_i[top], best_j[top]
    return TopPairs(best_i, best_j, best_s)


def python_loop(x: np.ndarray, k: int, groups, order) -> TopPairs:
    """Naive reference: a Python loop over every pair (cosine), heap of the best k."""
    import heapq

    heap: list[tuple[float, int, int]] = []
    rows = [row for row in x]
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if groups[i] == groups[j] and abs(order[i] - order[j]) == 1:
                continue
            s = float(np.dot(rows[i], rows[j]))
            if len(heap) < k:
                heapq.heappush(heap, (s, i, j))
            elif s > heap[0][0]:
                heapq.heapreplace(heap, (s, i, j))
    best = sorted(heap, reverse=True)
    return TopPairs(*(np.array(c) for c in ([b[1] for b in best], [b[2] for b in best])),
                    np.array([b[0] for b in best], np.float32))  # fmt: skip


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def scoring_table() -> list[tuple]:
    rows = []
    for n in (2_000, 20_000):
        groups = np.arange(n) // SHOTS_PER_ASSET
        order = np.arange(n) % SHOTS_PER_ASSET
        for metric, x in (("cosine", clustered_vectors(n, 512)), ("iou", silhouettes(n))):
            kw = dict(metric=metric, groups=groups, order=order)
            t_torch, got = best_of(partial(top_k_pairs, x, TOP, **kw), 3)
            t_np, ref = best_of(partial(numpy_blocked, x, TOP, metric, groups, order), 2)
            agree = np.allclose(np.sort(got.score), np.sort(ref.score), atol=1e-5)
            if n <= 2_000:
                exact = top_k_pairs_numpy(x, TOP, **kw)
                agree &= np.allclose(got.score, exact.score, atol=1e-5)
            target = 0.2 if n <= 2_000 else 5.0
            rows.append((n, metric, x.shape[1], t_torch, t_np, t_np / t_torch, target, agree))
            if n == 2_000 and metric == "cosine":
                t_py, naive = best_of(partial(python_loop, x, TOP, groups, order), 1)
                agree = np.allclose(got.score, naive.score, atol=1e-5)
                rows.append((n, "cosine (py loop)", 512, t_torch, t_py, t_py / t_torch, target,
                             agree))  # fmt: skip
    return rows


# --------------------------------------------------------------------------- precision


def _scene_of_shot(starts: list[int], ends: list[int], spans) -> dict[int, int]:
    """Shot index -> the scene covering the shot's middle frame."""
    out = {}
    for i, (a, b) in enumerate(zip(starts, ends)):
        mid = (a + b) // 2
        out[i] = next(k for k, (s, e) in enumerate(spans) if s <= mid < e)
    return out


def precision_table(folder: Path) -> list[tuple]:
    import amberlite
    from amberlite.matchcut import MATCH_TYPES, computed_by_feature, prepare, scored_pairs
    from amberlite.media.synth import sample_film

    paths, truth = [], None
    for seed in range(3):
        path = folder / f"film{seed + 1}.mp4"
        truth = sample_film(path, seed=seed, width=320, height=180)
        paths.append(path)
    store = amberlite.open(folder / "store")
    aliases = [a["alias"] for a in store.ingest(paths).assets]
    shots = store.entities("shot").join(store.assets().select("asset_id", "alias"), on="asset_id")
    scene = {}
    for alias in aliases:
        sub = shots.filter(alias=alias).sort("idx")
        m = _scene_of_shot(sub["start_frame"].to_list(), sub["end_frame"].to_list(),
                           truth.scene_spans)  # fmt: skip
        scene.update({(alias, i): s for i, s in m.items()})
    rows = []
    kind_of = {"color": "colour", "framing": "framing", "motion": "motion"}
    for match_type in MATCH_TYPES:
        designed = {frozenset((a, b)) for a, b, k in truth.matches if k == kind_of[match_type]}
        t = time.perf_counter()
        computed = computed_by_feature(prepare(store, aliases, match_type, progress=False))
        seconds = time.perf_counter() - t
        pairs = scored_pairs(store, aliases, match_type, TOP).table

        def relevant(r, designed=designed) -> bool:
            sa, sb = scene[r["asset_a"], r["shot_a"]], scene[r["asset_b"], r["shot_b"]]
            return (r["asset_a"] != r["asset_b"] and sa == sb) or frozenset((sa, sb)) in designed

        p_at_10 = np.mean([relevant(r) for r in pairs.iter_rows(named=True)])
        # within each film: the designed pairs among its top |designed|
        hits, total = 0, 0
        for alias in aliases:
            inner = scored_pairs(store, [alias], match_type, len(designed)).table
            got = {frozenset((scene[alias, a], scene[alias, b]))
                   for a, b in zip(inner["shot_a"], inner["shot_b"])}  # fmt: skip
            hits += len(got & designed)
            total += len(designed)
        rows.append((match_type, computed[MATCH_TYPES[match_type][0] + "@1"], seconds,
                     p_at_10, hits / total))  # fmt: skip
    return rows


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"\nscore all pairs, keep top {TOP} (adjacent shots excluded, {SHOTS_PER_ASSET}/asset)")
    head = f"{'shots':>7} {'metric':<17} {'dim':>4} {'torch s':>8} {'peer s':>8} "
    print(head + f"{'peer/torch':>10} {'target s':>8} {'same top':>8}")
    for n, metric, dim, tt, tp, ratio, target, agree in scoring_table():
        print(f"{n:>7} {metric:<17} {dim:>4} {tt:>8.3f} {tp:>8.3f} {ratio:>9.1f}x "
              f"{target:>8.1f} {'yes' if agree else 'NO':>8}")  # fmt: skip
    print("(peer: the same blocked algorithm in numpy; 'py loop': a Python loop over pairs)")
    with tempfile.TemporaryDirectory() as d:
        rows = precision_table(Path(d))
    print("\nprecision on 3 generated films (320x180, 745 frames each; real pipeline)")
    print(f"{'type':<8} {'shots':>6} {'compute s':>9} {'P@10':>6} {'R-prec/film':>11}")
    for match_type, n, seconds, p10, rprec in rows:
        print(f"{match_type:<8} {n:>6} {seconds:>9.2f} {p10:>6.2f} {rprec:>11.2f}")
    print(
        "P@10: top-10 pairs over all films that are designed matches or the same scene in "
        "two films.\nR-prec/film: designed pairs found among each film's top-|designed|."
    )


if __name__ == "__main__":
    main()

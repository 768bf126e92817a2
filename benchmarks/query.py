"""AQL query speed.

1. Parse + plan (build + optimize) of a 20-line query against a real store, the text's parse
   cache cleared each time (target: < 5 ms), and the uncached parse alone (the timing that
   tests/test_syntax.py used to assert; about 1 ms).
2. The warm path of a query over N = 10^6 "window" entities with a scalar feature, every value
   stored: ``run_query`` (parse, plan, count the memo, run the SQL) vs the same SQL statement
   run directly in DuckDB over the same catalog and Parquet files (target: within 1.3x).

    python -m benchmarks.query [--n 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from amberlite.query import plan, run_query
from amberlite.syntax import _parse_cached
from amberlite.syntax.to_ast import parse_text
from benchmarks.windows import render_clip, window_store

FEATURES = '''
@feature(entity="window", output=pa.float32(), batch=65536)
def score(windows):
    """A cheap scalar: a hash of the span, in [0, 1)."""
    a = np.array([w.start_frame * 100003 + w.end_frame for w in windows], dtype=np.uint64)
    return ((a * np.uint64(2654435761)) % np.uint64(1000)).astype(np.float32) / 1000.0
'''

QUERY_20 = """SELECT asset, index, start_s, end_s,
       end_s - start_s AS length,
       score,
       score * 2 AS double_score
FROM windows OF 'clip'
WHERE start_s >= 0
  AND end_s <= 1000
  AND index % 2 = 0
  AND score > 0.25
  AND score < 0.75
  AND asset LIKE 'cl%'
  AND start_frame BETWEEN 0 AND 100000
  AND end_frame IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
  AND NOT (score IS NULL)
  AND (index > 3 OR start_s < 00:00:01.500)
ORDER BY score DESC, start_s
LIMIT 100 OFFSET 10"""

WARM = "SELECT id, start_s, end_s, score FROM windows WHERE score > 0.5"

DIRECT = """
WITH s0 AS (
  SELECT e.entity_id AS id, a.alias AS asset, e.asset_id, e.idx AS "index", e.start_frame,
         e.end_frame, e.start_s, e.end_s
  FROM entities e JOIN assets a ON a.asset_id = e.asset_id
  WHERE e.entity_type = 'window' AND e.producer = $producer),
f0 AS (SELECT entity_id AS k, value AS v FROM read_parquet($files))
SELECT s0.id, s0.start_s, s0.end_s, f0.v AS score
FROM s0 LEFT JOIN f0 ON f0.k = s0.id
WHERE f0.v > 0.5
ORDER BY s0.asset, s0."index", s0.id"""


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "clip.mp4"
        render_clip(clip, 2000, texture=False)
        store = window_store(root, clip, args.n, FEATURES)
        t = time.perf_counter()
        store.materialize("score", progress=False)
        cold = time.perf_counter() - t
        store.compact("score")

        def plan_once() -> object:
            _parse_cached.cache_clear()
            return plan(store, QUERY_20)

        plan_s, _ = timed(plan_once, repeat=50)
        parse_text(QUERY_20)  # the parser is built once per process
        parse_s, _ = timed(lambda: parse_text(QUERY_20), repeat=100)
        run_query(store, WARM)  # warm the OS cache
        warm_s, df = timed(lambda: run_query(store, WARM))
        files = store.value_files("score")
        producer = store.resolver.producer_label("window")

        def direct() -> pl.DataFrame:
            con = duckdb.connect(str(store.catalog.path), read_only=True)
            try:
                return con.sql(DIRECT, params={"files": files, "producer": producer}).pl()
            finally:
                con.close()

        direct_s, df2 = timed(direct)
        assert df.height == df2.height, (df.height, df2.height)
        assert df["id"].to_list()[:1000] == df2["id"].to_list()[:1000]
    rows = [
        {"step": "parse (no cache), 20 lines", "aql s": parse_s, "peer s": None, "ratio": None},
        {"step": "parse+plan, 20-line query", "aql s": plan_s, "peer s": None, "ratio": None},
        {
            "step": f"warm query, N={args.n} ({df.height} rows out)",
            "aql s": warm_s,
            "peer s": direct_s,
            "ratio": round(warm_s / direct_s, 2),
        },
    ]
    print(f"cold compute of {args.n} values: {cold:.1f} s")
    with pl.Config(tbl_width_chars=200, tbl_hide_dataframe_shape=True, fmt_str_lengths=80):
        print(pl.DataFrame(rows).with_columns(pl.col("aql s", "peer s").round(5)))


if __name__ == "__main__":
    main()

"""Golden plans (tests/plans/<case>/{query.aql, logical.txt, explain.txt}) and a differential
test: every query gives the same table over an empty, a partly filled and a full memo.

A case with a ``replicas`` file (one feature name a line) runs on a copy of each store with an
hnsw replica of those features (M=16, ef=64): the index path of NEAREST / MATCH.

Regenerate the goldens with ``pytest tests/test_query_plans.py --update-goldens`` (or
``AQL_UPDATE_GOLDENS=1``) and review the diff; a missing golden fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from test_query_support import copy_store, make_store

from amberlite.plan.logical import show_plan
from amberlite.query import explain, plan, run_query

PLANS = Path(__file__).parent / "plans"
CASES = sorted(p.name for p in PLANS.iterdir() if (p / "query.aql").exists())
UPDATE = os.environ.get("AQL_UPDATE_GOLDENS") == "1"


@pytest.fixture(scope="module")
def stores(tmp_path_factory, media_dir):
    """Pristine stores: empty (nothing computed), partial, full."""
    root = tmp_path_factory.mktemp("plans")
    empty = make_store(root / "empty", media_dir)
    partial = copy_store(empty, root / "partial")
    partial.materialize("shots", "film1", progress=False)
    partial.materialize("brightness", "film1", progress=False)
    partial.materialize("scaled", "film2", progress=False)
    run_query(partial, "SELECT parity FROM frames OF 'film1' WHERE n < 7")
    full = copy_store(empty, root / "full")
    for name in ("shots", "brightness", "color", "scaled", "parity"):
        full.materialize(name, progress=False)
    full.materialize("scaled", params={"scale": 2}, progress=False)
    return {"empty": empty, "partial": partial, "full": full, "root": root}


def _with_replicas(store, case: str, dest: Path):
    """``store``, or a copy with the case's replica indexes declared."""
    listed = PLANS / case / "replicas"
    if not listed.exists():
        return store
    store = copy_store(store, dest)
    for feature in listed.read_text().split():
        store.replicas.add(feature, "hnsw", M=16, ef=64)
    return store


def _check(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text + "\n")
    if not path.exists():
        pytest.fail(
            f"{path} is missing: create it with "
            f"`pytest tests/{Path(__file__).name} --update-goldens` and review it"
        )
    assert path.read_text() == text + "\n", f"{path} differs (--update-goldens rewrites it)"


@pytest.mark.parametrize("case", CASES)
def test_golden_plan(stores, case, tmp_path):
    query = (PLANS / case / "query.aql").read_text().strip()
    store = _with_replicas(stores["empty"], case, tmp_path / "empty")
    logical, _ = plan(store, query)
    _check(PLANS / case / "logical.txt", show_plan(logical))
    _check(PLANS / case / "explain.txt", explain(store, query))


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith(("show", "describe"))])
def test_same_table_over_any_memo_state(stores, case, tmp_path):
    query = (PLANS / case / "query.aql").read_text().strip()
    results = {}
    for state in ("empty", "partial", "full"):
        store = copy_store(stores[state], tmp_path / state)  # each run starts from the state
        store = _with_replicas(store, case, tmp_path / f"{state}_indexed")
        results[state] = run_query(store, query)
    assert results["full"].height > 0
    for state in ("empty", "partial"):
        assert_frame_equal(results[state], results["full"], check_exact=True)

"""Several shot features over one decode (``Resolver.materialize_many``): the same values as
one feature at a time, each frame of the film decoded once instead of once per feature, and
memoization, partial scopes, failures, claims (a dead holder's taken over, a live one's
waited for) and run records kept per feature."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import amberlite
from amberlite.cli import main
from amberlite.matchcut import computed_by_feature, prepare
from amberlite.media import decode as decode_mod
from amberlite.media.synth import Scene, render
from amberlite.memo.key import memo_key
from amberlite.memo.store import now
from amberlite.run.executor import LocalExecutor
from amberlite.run.resolve import HOST

FEATURES = ["shot_embedding", "match_color", "match_framing", "match_motion"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("one_decode") / "clip.mp4"
    scenes = [
        Scene(24, (200, 40, 40), motion=(0.6, 0.2), seed=1),
        Scene(30, (40, 160, 60), "rect", motion=(-0.4, 0.3), seed=2),
        Scene(20, (40, 60, 200), pan=(2, 0), seed=3),
        Scene(26, (220, 200, 40), "none", pan=(-1, 1), seed=4),
        Scene(22, (120, 40, 160), motion=(0.2, -0.5), seed=5),
    ]
    render(path, scenes, width=128, height=72, gop=12, seed=1)
    return path


def _store(tmp_path: Path, clip: Path, name: str):
    store = amberlite.open(tmp_path / name)
    store.ingest([clip], aliases=["clip"])
    store.materialize("shots", progress=False)
    return store


def _values(store, name: str) -> dict[str, np.ndarray]:
    df = store.get(name, compute=False)
    return {i: np.asarray(v) for i, v in zip(df["id"].to_list(), df[name].to_list())}


@pytest.fixture
def frames_decoded(monkeypatch):
    """Counts every frame that comes out of the decoder."""
    count = [0]
    real = decode_mod._numbered

    def counting(frames, index):
        for item in real(frames, index):
            count[0] += 1
            yield item

    monkeypatch.setattr(decode_mod, "_numbered", counting)
    return count


def test_together_equals_one_by_one_and_decodes_once(tmp_path, clip, frames_decoded) -> None:
    alone = _store(tmp_path, clip, "alone")
    together = _store(tmp_path, clip, "together")
    frames_decoded[0] = 0
    for name in FEATURES:
        alone.materialize(name, progress=False)
    separate = frames_decoded[0]
    frames_decoded[0] = 0
    ctx = together.ctx
    stats = ctx.resolver.materialize_many(
        [(ctx.feature(n), None) for n in FEATURES], None, progress=False
    )
    shared = frames_decoded[0]
    assert [s.computed for s in stats] == [5] * 4 and not any(s.failed for s in stats)
    # every frame once (120, plus what a seek decodes before a batch's first frame)
    assert shared < 150 and separate > 3 * shared
    for name in FEATURES:
        a, b = _values(alone, name), _values(together, name)
        assert a.keys() == b.keys() and len(a) == 5
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])  # bit for bit: the same pixels
    runs = together.ctx.catalog.query("SELECT feature, computed FROM runs ORDER BY feature")
    assert sorted(r for r in runs if r[0] in FEATURES) == sorted((n, 5) for n in FEATURES)
    assert together.ctx.catalog.query("SELECT count(*) FROM claims")[0][0] == 0
    again = ctx.resolver.materialize_many(
        [(ctx.feature(n), None) for n in FEATURES], None, progress=False
    )
    assert [s.computed for s in again] == [0] * 4 and [s.stored for s in again] == [5] * 4
    # a query that needs several shot features computes them over one decode too
    queried = _store(tmp_path, clip, "queried")
    frames_decoded[0] = 0
    table = queried.query("SELECT id, match_color, match_motion FROM shots ORDER BY id")
    assert frames_decoded[0] < 150 and table.height == 5
    for name in ("match_color", "match_motion"):
        want = _values(alone, name)
        for i, v in zip(table["id"].to_list(), table[name].to_list()):
            np.testing.assert_array_equal(np.asarray(v), want[i])


def test_partial_scope_failures_and_matchcut(tmp_path, clip, defs) -> None:
    store = _store(tmp_path, clip, "partial")
    ctx = store.ctx
    shots = store.entities("shot")["id"].to_list()
    ctx.resolver.materialize(
        ctx.feature("match_color"), None, None, entity_ids=shots[:2], progress=False
    )
    store.apply(
        defs(
            """
from amberlite import feature, Decode
import pyarrow as pa

@feature(entity="shot", version=1, output=pa.float32(), decode=Decode(size=(32, 18)))
def picky(shot):
    if shot.index == 1:
        raise ValueError("not this one")
    return float(shot.frames().mean())
"""
        )
    )
    # match_motion: two shots claimed by a dead process (taken over), one by a live one that
    # gives it back a moment later (waited for while the rest is computed)
    dead = subprocess.Popen(["true"])
    dead.wait()
    motion = memo_key(ctx.feature("match_motion"), None)
    with ctx.catalog.write() as con:
        for eid, owner, pid in [(shots[3], "gone", dead.pid), (shots[4], "gone", dead.pid)] + [
            (shots[0], "live", os.getpid())
        ]:
            con.execute(
                "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [*motion.sql_args(), eid, owner, HOST, pid, now()],
            )

    def give_back() -> None:
        time.sleep(1.0)
        with ctx.catalog.write() as con:
            con.execute("DELETE FROM claims WHERE owner = 'live'")

    threading.Thread(target=give_back).start()
    stats = ctx.resolver.materialize_many(
        [(ctx.feature(n), None) for n in ("match_color", "picky", "match_motion")],
        None,
        progress=False,
    )
    assert [(s.stored, s.computed, s.failed) for s in stats] == [(2, 3, 0), (0, 4, 1), (0, 5, 0)]
    assert ctx.catalog.query("SELECT count(*) FROM claims") == [(0,)]
    assert store.get("picky", compute=False).height == 4
    fails = ctx.catalog.query("SELECT feature, error FROM failures")
    assert len(fails) == 1 and fails[0][0] == "picky" and "not this one" in fails[0][1]
    # matchcut over several types: shot_embedding joins the group, each feature once
    work = computed_by_feature(prepare(store, ["clip"], ["color", "framing", "motion"]))
    assert {k: v for k, v in work.items() if v} == {
        "shot_embedding@1": 5,
        "dedup@1": 5,
        "match_framing@3": 5,
    }
    assert sum(computed_by_feature(prepare(store, ["clip"], ["framing", "color"])).values()) == 0
    # the command takes several features (stored here: nothing to compute) and one --param
    cli = CliRunner()
    r = cli.invoke(main, ["--store", str(store.root), "materialize", "match_color", "picky"])
    assert r.exit_code == 0, r.output
    assert "match_color@1: 5 requested, 5 already stored, 0 computed" in r.output
    assert "picky@1: 5 requested, 4 already stored, 0 computed, 0 failed, 1 skipped" in r.output
    r = cli.invoke(
        main, ["--store", str(store.root), "materialize", "match_color", "picky", "--param", "a=1"]
    )
    assert r.exit_code == 2 and "--param names one feature" in r.output


class OneAtATime(LocalExecutor):
    """An executor without ``map_group`` (as the Ray one): features go one by one."""

    map_group = None  # type: ignore[assignment]

    def __getattribute__(self, name):
        if name == "map_group":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_an_executor_without_groups_computes_one_feature_at_a_time(tmp_path, clip) -> None:
    store = _store(tmp_path, clip, "plain")
    ctx = store.ctx
    stats = ctx.resolver.materialize_many(
        [(ctx.feature(n), None) for n in ("match_color", "dedup")],
        None,
        executor=OneAtATime(),
        progress=False,
    )
    work = {k: v for k, v in computed_by_feature(stats).items() if v}
    assert work == {"match_color@1": 5, "dedup@1": 5, "shot_embedding@1": 5}

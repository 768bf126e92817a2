"""Store properties under random interleavings of writes, compaction, gc and reopening."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import amberlite

DEFS = """
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.int64(), batch=7)
def twice(frames):
    return [2 * f.n for f in frames]
"""

ops = st.lists(
    st.one_of(
        st.tuples(st.just("materialize"), st.sampled_from([("clip_a",), ("clip_b",), None])),
        st.tuples(st.just("compact"), st.none()),
        st.tuples(st.just("gc"), st.none()),
        st.tuples(st.just("reopen"), st.none()),
    ),
    min_size=1,
    max_size=6,
)
_counter = itertools.count()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_one_correct_value_per_entity(tmp_path, media_dir, steps):
    store = amberlite.open(tmp_path / f"s{next(_counter)}")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], progress=False)
    defs = tmp_path / "defs.py"
    defs.write_text(DEFS)
    store.apply(defs)
    frames = {"clip_a": 60, "clip_b": 40}
    done: set[str] = set()
    for op, arg in steps:
        if op == "materialize":
            store.materialize("twice", list(arg) if arg else None, progress=False)
            done |= set(arg) if arg else set(frames)
        elif op == "compact":
            store.compact("twice")
        elif op == "gc":
            store.memo.gc()
        else:
            store = amberlite.open(store.root)
        values = store.get("twice", compute=False)
        ids = values["id"].to_list()
        assert len(ids) == len(set(ids)), "an entity has two values"
        assert values.height == sum(frames[a] for a in done)
        for eid, v in values.select("id", "twice").rows():
            assert v == 2 * int(eid.rsplit("/f", 1)[1])

"""A file with garbage in the middle of its stream: decoding errors name the real frame, the
shots before the damage are found, features over them succeed, and only what covers the
unreadable frames fails (naming that frame) — the rest of the batch goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import small_clip

import amberlite
from amberlite.errors import MediaError
from amberlite.media.decode import Decode, read_batch
from amberlite.media.frame_index import frame_index

DEFS = """
import pyarrow as pa
from amberlite import Decode, feature


@feature(entity="shot", output=pa.float32(), decode=Decode(size=(32, 18)))
def brightness(shot):
    return float(shot.frames().mean() / 255.0)
"""


def garbage_copy(src: Path, dst: Path, start: float = 0.5, end: float = 0.6) -> None:
    """``src`` with the bytes between the ``start`` and ``end`` fractions overwritten by
    random bytes: the container's index is intact, the stream is not."""
    data = bytearray(src.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("damaged")
    clean = small_clip(d / "clean.mp4", seed=3, scenes=4, frames=30)
    garbage_copy(clean, d / "damaged.mp4")
    return clean, d / "damaged.mp4"


def first_bad_frame(path: Path) -> int:
    with pytest.raises(MediaError) as e:
        read_batch(path, decode=Decode(size=(32, 18)))
    return e.value.frame


def test_decoding_errors_name_the_real_frame(damaged):
    _, bad = damaged
    n = first_bad_frame(bad)
    assert 0 < n < len(frame_index(bad))
    with pytest.raises(MediaError, match=rf"decoding failed at frame {n}\b|before frame {n}\b"):
        read_batch(bad, n - 5, None, decode=Decode(size=(32, 18)))
    numbers, frames = read_batch(bad, 0, n, decode=Decode(size=(32, 18)))  # all readable
    assert numbers.tolist() == list(range(n))


def test_shots_before_the_damage_are_found_and_their_features_succeed(damaged, tmp_path):
    clean, bad = damaged
    n = first_bad_frame(bad)
    store = amberlite.open(tmp_path / "s")
    (tmp_path / "defs.py").write_text(DEFS)
    store.apply(tmp_path / "defs.py")
    report = store.ingest([bad, clean], aliases=["bad", "good"])
    assert not report.failures
    run = store.materialize("shots")
    assert (run.computed, run.failed) == (2, 0)
    shots = store.query(
        "SELECT s.asset AS asset, s.start_frame AS a, s.end_frame AS b FROM shots s "
        "ORDER BY asset, a"
    )
    bad_spans = [(r["a"], r["b"]) for r in shots.rows(named=True) if r["asset"] == "bad"]
    good_spans = [(r["a"], r["b"]) for r in shots.rows(named=True) if r["asset"] == "good"]
    assert good_spans == [(0, 30), (30, 60), (60, 90), (90, 120)]
    # the readable frames are segmented as the clean file's are, the rest is one span
    assert bad_spans[-1] == (n, 120)
    assert bad_spans[:-1] == [(a, min(b, n)) for a, b in good_spans if a < n]

    run = store.materialize("brightness")
    assert run.failed == 1 and run.computed == len(bad_spans) - 1 + len(good_spans)
    (failure,) = store.failures().rows(named=True)
    assert failure["asset"] == "bad" and failure["entity_id"].endswith(f"/{n}-120")
    assert f"decoding failed at frame {n}: " in failure["error"]
    values = store.query(
        "SELECT s.asset AS asset, s.start_frame AS a, brightness AS v FROM shots s "
        "ORDER BY asset, a"
    )
    got = {(r["asset"], r["a"]): r["v"] for r in values.rows(named=True)}
    same = [span for span in bad_spans[:-1] if span in good_spans]
    assert same  # shots wholly before the damage: same frames, same values as the clean copy
    for a, _ in same:
        assert got[("bad", a)] == pytest.approx(got[("good", a)], abs=1e-6)
    assert all(got[("bad", a)] is not None for a, _ in bad_spans[:-1])
    assert got[("bad", n)] is None

"""The ``shots`` segmenter on generated media with known cuts, through a real store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amberlite
from amberlite.errors import ResolveError
from amberlite.library import segment
from amberlite.media.frame_index import frame_index
from amberlite.media.synth import Scene, SynthTruth, render

W, H = 320, 180


def _film() -> list[Scene]:
    """Hard cuts, a dissolve, a fade, a two-frame flash, fast motion and a camera pan."""
    return [
        Scene(40, (30, 40, 120), "disc", (240, 240, 240), seed=1),
        Scene(40, (200, 110, 40), "rect", (20, 20, 200), (0.3, 0.5), 0.2, seed=2),  # cut
        Scene(45, (40, 150, 60), "disc", (250, 230, 60), seed=3, flashes=(20, 21)),  # cut
        Scene(
            45,
            (120, 40, 140),
            "none",
            pan=(6, 0),
            transition_in="dissolve",
            transition_frames=16,
            seed=4,
        ),
        Scene(
            45, (90, 90, 90), "disc", (250, 40, 40), (0.2, 0.3), 0.25, motion=(2.5, 1.8), seed=5
        ),  # fast motion, entered by a cut
        Scene(
            45,
            (20, 120, 130),
            "rect",
            (250, 140, 180),
            transition_in="fade",
            transition_frames=20,
            seed=6,
        ),
        Scene(40, (220, 200, 60), "disc", (30, 30, 30), pan=(-9, 3), seed=7),  # cut
    ]


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthTruth]:
    path = tmp_path_factory.mktemp("shots") / "film.mp4"
    return path, render(path, _film(), W, H)


def _cuts(frame: object) -> list[int]:
    return frame["start_frame"].to_list()[1:]  # type: ignore[index]


def _check_cuts(cuts: list[int], truth: SynthTruth) -> None:
    """Every hard cut within +-1, every transition by one cut inside its span, nothing else."""
    left = list(cuts)
    for c in truth.cuts:
        near = [d for d in left if abs(d - c) <= 1]
        assert near, f"hard cut at {c} missed; found {cuts}"
        left.remove(near[0])
    for start, end, kind in truth.transitions:
        inside = [d for d in left if start <= d <= end]
        assert len(inside) == 1, f"{kind} [{start}, {end}) found as {inside}; all {cuts}"
        left.remove(inside[0])
    assert left == [], f"spurious cuts {left} (flashes at {truth.flashes})"


def test_store_segments_known_cuts(tmp_path: Path, film: tuple[Path, SynthTruth]) -> None:
    path, truth = film
    store = amberlite.open(tmp_path / "store")
    assert not store.ingest([path]).failures
    shots = store.entities("shot")
    starts, ends = shots["start_frame"].to_list(), shots["end_frame"].to_list()
    assert starts[0] == 0 and ends[-1] == truth.frame_count
    assert starts[1:] == ends[:-1]  # spans tile the asset
    _check_cuts(_cuts(shots), truth)
    flash = truth.flashes
    assert all(not flash[0] - 1 <= c <= flash[-1] + 2 for c in starts)
    fast = truth.scene_spans[4]
    assert all(not fast[0] + 2 <= c < fast[1] for c in starts)  # no cut inside fast motion
    assert min(e - s for s, e in zip(starts, ends)) >= 8


def _entities_for(store: amberlite.store.Store, params: dict) -> list[int]:
    producer = store.resolver.producer_label("shot", params)
    sql, qparams = store.resolver.entity_sql("shot", None, producer=producer)
    sql = sql.replace("SELECT entity_id, asset_id", "SELECT start_frame", 1)
    with store.catalog.read() as con:
        return sorted(r[0] for r in con.execute(sql, qparams).fetchall())


def test_params_are_configurable(tmp_path: Path, film: tuple[Path, SynthTruth]) -> None:
    path, truth = film
    store = amberlite.open(tmp_path / "store")
    store.ingest([path])
    long_only = {"min_frames": 60}
    store.materialize("shots", params=long_only)
    starts = _entities_for(store, long_only)
    bounds = [*starts, truth.frame_count]
    assert min(b - a for a, b in zip(bounds[:-1], bounds[1:])) >= 60
    assert len(starts) < len(truth.scene_spans)
    no_hard = {"threshold": 1e6}
    store.materialize("shots", params=no_hard)
    cuts = _entities_for(store, no_hard)[1:]
    assert cuts and all(any(s <= c <= e for s, e, _ in truth.transitions) for c in cuts)
    assert store.get("shots")["shots"].len() == 1  # the default values are still there


def test_detector_settings_directly(film: tuple[Path, SynthTruth]) -> None:
    path, truth = film
    f = segment.features(str(path), frame_index(path), fps=25)
    assert f.numbers.tolist() == list(range(truth.frame_count))
    default = segment.detect(f, 3.0, 8, 8.0, 0.02)
    _check_cuts(default, truth)
    no_gradual = segment.detect(f, 3.0, 8, 8.0, 0.0)
    dissolve = truth.transitions[0]
    assert not any(dissolve[0] <= c <= dissolve[1] for c in no_gradual)
    assert segment.spans([], 10) == [(0, 10)]
    assert segment.spans([3, 7], 10) == [(0, 3), (3, 7), (7, 10)]


def test_vfr_frame_numbers_are_exact(tmp_path: Path) -> None:
    scenes = [
        Scene(30, (200, 40, 40), seed=1),
        Scene(30, (40, 160, 60), "rect", seed=2),
        Scene(30, (40, 60, 200), "disc", (10, 10, 10), seed=3),
    ]
    path = tmp_path / "vfr.mp4"
    truth = render(path, scenes, W, H, vfr=True, seed=3)
    store = amberlite.open(tmp_path / "store")
    store.ingest([path])
    shots = store.entities("shot")
    assert _cuts(shots) == list(truth.cuts)  # exact frame numbers, not nominal-rate times
    assert shots["start_s"].to_list()[1:] == pytest.approx([truth.times[c] for c in truth.cuts])


def test_chunked_decoding_matches_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.mp4"
    scenes = [
        Scene(
            35,
            tuple(int(c) for c in np.random.default_rng(i).integers(20, 230, 3)),
            ("disc", "rect")[i % 2],
            seed=i,
        )
        for i in range(8)
    ]
    truth = render(path, scenes, 160, 90, gop=12)
    index = frame_index(path)
    monkeypatch.setattr(segment, "CHUNK_MIN", 40)
    assert len(segment.chunk_bounds(index, 3)) > 2
    assert all(index.pts[a] in index.keyframe_pts for a, _ in segment.chunk_bounds(index, 3))
    one = segment.features(str(path), index, workers=1)
    many = segment.features(str(path), index, workers=3)
    names = ("numbers", "d1", "h1", "lag", "h_long", "d_long", "resid", "mean_y", "spread")
    for name in (*names, "spread_long"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name), err_msg=name)
    assert segment.detect(many, 3.0, 8, 8.0, 0.02) == list(truth.cuts)


def test_chunked_decoding_leaves_opencv_threads_as_it_found_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segmenting turns OpenCV's thread pool off while chunks are decoded on every core
    (process-wide); concurrent segmentations share that, and the last one out restores the
    caller's setting."""
    import threading

    import cv2

    path = tmp_path / "long.mp4"
    render(path, [Scene(40, (40 + 20 * i, 90, 200 - 20 * i), seed=i) for i in range(6)], 160, 90)
    index = frame_index(path)
    monkeypatch.setattr(segment, "CHUNK_MIN", 40)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        seen: list[int] = []
        real = segment.chunk_features
        monkeypatch.setattr(
            segment, "chunk_features", lambda *a: seen.append(cv2.getNumThreads()) or real(*a)
        )
        runs = [threading.Thread(target=segment.features, args=(str(path), index, 25.0, 2))]
        runs += [threading.Thread(target=segment.features, args=(str(path), index, 25.0, 2))]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
        assert seen and set(seen) == {1}  # off while the chunks were decoded
        assert cv2.getNumThreads() == 3  # ... and back afterwards
        segment.features(str(path), index, workers=1)  # one piece: left alone
        assert seen[-1] == 3
    finally:
        cv2.setNumThreads(before)


def test_single_frame_asset_is_one_shot(tmp_path: Path) -> None:
    path = tmp_path / "one.mp4"
    render(path, [Scene(1, (100, 100, 100))], 64, 36)
    store = amberlite.open(tmp_path / "store")
    store.ingest([path])
    shots = store.entities("shot")
    assert list(zip(shots["start_frame"], shots["end_frame"])) == [(0, 1)]


def test_bad_params_are_refused_before_anything_is_computed(
    tmp_path: Path, film: tuple[Path, SynthTruth]
) -> None:
    store = amberlite.open(tmp_path / "store")
    store.ingest([film[0]])
    with pytest.raises(ResolveError, match=r"shots: min_frames must be an int >= 1, got 0"):
        store.materialize("shots", params={"min_frames": 0})
    with pytest.raises(ResolveError, match=r"shots: threshold must be a positive number"):
        store.query("SELECT id FROM shots USING shots(threshold=-1)")
    with pytest.raises(ResolveError, match=r"gradual must be a number in \[0, 1\]"):
        store.set_segmenter("shot", "shots", gradual=2)
    # nothing was computed, recorded or set: the store's shots are the defaults' still
    assert store.failures().height == 0
    assert store.catalog.query("SELECT count(*) FROM meta WHERE key LIKE 'segmenter:%'") == [(0,)]
    assert store.materialize("shots", params={"min_frames": 4}).failed == 0


def test_thumbnail_shortcuts_give_the_plain_method_s_values() -> None:
    """The fast thumbnail path (strided copy at odd integer factors, 2x2 averages and
    per-frame statistics over stacked frames) equals the plain per-frame method:
    OpenCV bilinear to twice the size then 2x2 area, NumPy's float32 mean and spread."""
    import cv2

    rng = np.random.default_rng(7)
    size = segment.THUMB
    for rows, cols in ((360, 640), (1080, 1920), (720, 1280), (180, 320), (90, 160), (36, 64)):
        planes = rng.integers(0, 256, (3, rows, cols), dtype=np.uint8)
        first, doubled = segment._reducer(planes[0].shape, size)
        got = np.stack([first(p) for p in planes])
        got = segment._halve(got) if doubled else got
        for p, g in zip(planes, got):
            if cols > 2 * size[0] and rows > 2 * size[1]:
                p = cv2.resize(p, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_LINEAR)
            want = cv2.resize(p, size, interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(g, want, err_msg=f"{cols}x{rows}")
    full = rng.integers(0, 256, (300, 3456), dtype=np.uint8)
    full[:40, :2304] //= 9  # dark frames: their luma spread is computed too
    cdf, mean_y, std_y = segment._frame_stats(full)
    y = full[:, :2304].astype(np.float32)
    np.testing.assert_array_equal(mean_y, y.mean(axis=1))
    dark = mean_y <= 28.0
    assert dark.sum() == 40 and np.isnan(std_y[~dark]).all()
    np.testing.assert_array_equal(std_y[dark], y[dark].std(axis=1))
    bins = np.concatenate([full[:, :2304] >> 3, (full[:, 2304:] >> 4) + 32], axis=1)
    bins[:, 2304 + 576 :] += 16
    counts = np.stack([np.bincount(b, minlength=64) for b in bins]).astype(np.float32)
    np.testing.assert_array_equal(cdf[:, :32], np.cumsum(counts[:, :32], axis=1) / (2304 * 32))
    np.testing.assert_array_equal(cdf[:, 48:], np.cumsum(counts[:, 48:], axis=1) / (576 * 16))

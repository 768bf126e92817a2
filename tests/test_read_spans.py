"""One decode for many shots: ``read_spans`` returns exactly what ``read_batch`` returns per
span (fps sampling, gaps, overlaps, empty spans), and a batch of shot views reads its frames
through it (``prefetch``) with the same values and one pass over the file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import amberlite.core.entities as entities
from amberlite.core.entities import AssetRecord, AssetView, SpanView, prefetch
from amberlite.media import decode as decode_mod
from amberlite.media.decode import Decode, read_batch, read_spans, read_spans_multi
from amberlite.media.frame_index import frame_index
from amberlite.media.synth import Scene, render


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spans") / "clip.mp4"
    scenes = [
        Scene(40, (200, 40, 40), motion=(0.5, 0.2), seed=1),
        Scene(30, (40, 160, 60), "rect", motion=(-0.4, 0.1), seed=2),
        Scene(50, (40, 60, 200), pan=(2, 0), seed=3),
    ]
    render(path, scenes, width=96, height=54, gop=12, stamp=True)
    return path


SPANS = [(70, 120), (0, 40), (40, 70), (5, 9), (30, 30), (100, 400), (118, 120)]


@pytest.mark.parametrize(
    "decode",
    [Decode(size=(32, 18)), Decode(size=(48, 27), fps=Fraction(8)), Decode(format="gray")],
)
def test_read_spans_equals_read_batch(clip: Path, decode: Decode) -> None:
    index = frame_index(clip)
    got = read_spans(clip, SPANS, decode, index, gap=20)
    for (s, e), (numbers, frames) in zip(SPANS, got):
        want_n, want_f = read_batch(clip, s, e, decode, index)
        np.testing.assert_array_equal(numbers, want_n)
        np.testing.assert_array_equal(frames, want_f)
        assert frames.shape == want_f.shape


def test_a_batch_of_shots_decodes_once(clip: Path, monkeypatch) -> None:
    index = frame_index(clip)
    rec = AssetRecord("a" * 32, "clip", str(clip), 96, 54, Fraction(25), 4.8, 120, False)
    asset = AssetView(rec, Decode(size=(32, 18), fps=Fraction(10)), clip.parent, index)
    shots = [
        SpanView("shot", f"a/{s}-{e}", asset, i, s, e, s / 25, e / 25)
        for i, (s, e) in enumerate([(0, 40), (40, 70), (70, 120)])
    ]
    alone = [s.frames_with_numbers() for s in shots]
    seeks = []
    real = decode_mod._decode_wanted

    def counting(*args, **kwargs):
        seeks.append(args[2][0])
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_mod, "_decode_wanted", counting)
    with prefetch(shots):
        together = [s.frames_with_numbers() for s in shots]
    assert len(seeks) == 1  # one pass for the three shots
    for (an, af), (tn, tf) in zip(alone, together):
        np.testing.assert_array_equal(an, tn)
        np.testing.assert_array_equal(af, tf)
    monkeypatch.setattr(entities, "PREFETCH_BYTES", 32 * 18 * 3 * 10)  # ~one shot's frames
    seeks.clear()
    with prefetch(shots):
        capped = [s.frames_with_numbers() for s in shots]
    assert len(seeks) == 3
    for (an, af), (tn, tf) in zip(alone, capped):
        np.testing.assert_array_equal(an, tn)
        np.testing.assert_array_equal(af, tf)
    seeks.clear()
    assert len(shots[0].frames_with_numbers()[0]) == 16  # outside a batch: its own decode
    assert len(seeks) == 1


def test_resized_rgb_is_what_pyav_gives_frame_by_frame(clip: Path) -> None:
    import av

    numbers, frames = read_batch(clip, 0, 30, Decode(size=(40, 22)))
    with av.open(str(clip)) as c:
        want = [
            f.to_ndarray(format="rgb24", width=40, height=22, interpolation="AREA")
            for _, f in zip(range(30), c.decode(video=0))
        ]
    np.testing.assert_array_equal(frames, np.stack(want))


def test_read_spans_multi_decodes_once_for_every_setting(clip: Path, monkeypatch) -> None:
    index = frame_index(clip)
    requests = [
        (Decode(size=(32, 18), fps=Fraction(8)), [(0, 40), (70, 120)]),
        (Decode(size=(32, 18), fps=Fraction(4)), [(40, 70), (0, 40)]),  # same picture, rate
        (Decode(size=(48, 27), format="gray"), [(5, 9), (30, 30), (100, 400)]),
    ]
    calls = []
    real = decode_mod._decode_wanted

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_mod, "_decode_wanted", counting)
    got = read_spans_multi(clip, requests, index, gap=250)
    assert [c for c in calls if c] == [calls[0]]  # one pass for every setting (and an empty span)
    monkeypatch.setattr(decode_mod, "_decode_wanted", real)
    for (decode, spans), results in zip(requests, got):
        for (s, e), (numbers, frames) in zip(spans, results):
            want_n, want_f = read_batch(clip, s, e, decode, index)
            np.testing.assert_array_equal(numbers, want_n)
            np.testing.assert_array_equal(frames, want_f)
            assert frames.shape == want_f.shape

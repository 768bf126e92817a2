"""Tests of amberlite.media on generated clips (no mocks, nothing downloaded)."""

from __future__ import annotations

import shutil
import wave
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amberlite.errors import MediaError
from amberlite.media import (
    Decode,
    FrameIndex,
    Scene,
    SynthTruth,
    content_id,
    corrupt_copy,
    frame_index,
    probe,
    read_batch,
    read_frames,
    read_luma,
    read_stamp,
    render,
    sample_film,
)

W, H = 320, 180
SCENES = (
    Scene(70, (120, 60, 50), "disc", (240, 240, 240), motion=(0.5, 0.2), seed=1),
    Scene(50, (30, 160, 60), "rect", (20, 20, 200), (0.3, 0.6), pan=(3, 1), seed=2),
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, SynthTruth]]:
    """Stamped 120-frame clips: CFR mp4, VFR mkv, VFR mp4 with B-frames (gop 25)."""
    d = tmp_path_factory.mktemp("clips")
    specs = {
        "cfr_mp4": ("cfr.mp4", {}),
        "vfr_mkv": ("vfr.mkv", {"vfr": True, "seed": 3}),
        "vfr_bframes_mp4": ("vfr_b.mp4", {"vfr": True, "preset": "veryfast"}),
    }
    out = {}
    for name, (filename, kw) in specs.items():
        path = d / filename
        out[name] = (path, render(path, SCENES, W, H, gop=25, stamp=True, **kw))
    return out


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthTruth]:
    path = tmp_path_factory.mktemp("film") / "film.mp4"
    return path, sample_film(path, seed=1, width=W, height=H)


# --------------------------------------------------------------------------- probe


def test_probe_cfr_exact_rate(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    truth = render(path, [Scene(45, (10, 20, 30))], W, H, fps=Fraction(30000, 1001))
    info = probe(path)
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.frame_count == truth.frame_count == 45
    assert info.duration_s == pytest.approx(45 * 1001 / 30000, abs=1e-3)
    assert (info.codec, info.container) == ("h264", "mp4")
    assert (info.width, info.height) == (W, H)
    assert info.variable_frame_rate is False
    assert info.path == str(path)


def test_probe_vfr(clips) -> None:
    for name in ("vfr_mkv", "vfr_bframes_mp4"):
        path, truth = clips[name]
        info = probe(path)
        assert info.variable_frame_rate is True
        assert info.frame_count == truth.frame_count == 120
        assert float(info.frame_rate) == pytest.approx(info.frame_count / info.duration_s)
    assert probe(clips["vfr_mkv"][0]).container == "matroska"
    assert probe(clips["cfr_mp4"][0]).variable_frame_rate is False


# --------------------------------------------------------------------------- content ids


def test_content_id_follows_bytes_not_names(clips, tmp_path: Path) -> None:
    src = clips["cfr_mp4"][0]
    moved = tmp_path / "renamed.bin"
    shutil.copyfile(src, moved)
    assert content_id(moved) == content_id(src)
    assert len(content_id(src)) == 32
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 1
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(bytes(data))
    assert content_id(changed) != content_id(src)
    with pytest.raises(MediaError, match="missing.mp4"):
        content_id(tmp_path / "missing.mp4")


# --------------------------------------------------------------------------- exact numbering


@pytest.mark.parametrize("name", ["cfr_mp4", "vfr_mkv", "vfr_bframes_mp4"])
def test_read_frames_numbers_match_content(clips, name: str) -> None:
    path, truth = clips[name]
    index = frame_index(path)
    assert len(index) == truth.frame_count
    np.testing.assert_allclose(index.seconds, truth.times, atol=1e-3)
    # starts mid-GOP (gop 25), on a keyframe, across the scene change, to/past the end
    for start, end in [(0, 5), (37, 44), (50, 51), (61, 80), (113, None), (118, 500)]:
        got = list(read_frames(path, start, end, index=index))
        assert [n for n, _ in got] == list(range(start, min(end or 120, 120)))
        assert [read_stamp(a) for _, a in got] == [n for n, _ in got]
        assert all(a.shape == (H, W, 3) and a.dtype == np.uint8 for _, a in got)
    gray = list(read_frames(path, 88, 93, Decode(format="gray")))  # builds its own index
    assert [read_stamp(a) for _, a in gray] == [n for n, _ in gray] == list(range(88, 93))


def test_frame_at_time_of_round_trip_vfr(clips, tmp_path: Path) -> None:
    path, truth = clips["vfr_mkv"]
    index = frame_index(path)
    for n in range(len(index)):
        t = index.time_of(n)
        assert t == pytest.approx(truth.times[n], abs=1e-3)
        assert index.frame_at(t) == n
        end = index.time_of(n + 1) if n + 1 < len(index) else index.duration_s
        assert index.frame_at((t + end) / 2) == n  # anywhere in its display interval
    held = [n for n in range(len(index) - 1) if index.time_of(n + 1) - index.time_of(n) > 0.05]
    assert held and held != list(range(len(held)))  # irregular: n / fps would be wrong
    with pytest.raises(ValueError):
        index.frame_at(-0.01)
    with pytest.raises(ValueError):
        index.frame_at(index.duration_s)
    index.save(tmp_path / "clip.idx")
    assert FrameIndex.load(tmp_path / "clip.idx") == index


# --------------------------------------------------------------------------- decode settings


def test_decode_size_fps_gray(clips) -> None:
    path, truth = clips["vfr_mkv"]
    numbers, frames = read_batch(path, 10, 100, Decode(size=(160, 90), fps=Fraction(5)))
    assert frames.shape == (len(numbers), 90, 160, 3)
    assert [read_stamp(f) for f in frames] == list(numbers)
    times = np.array(truth.times)  # brute force: nearest frame to each k / 5 s
    expected = {int(np.argmin(np.abs(times - k / 5))) for k in range(int(times[-1] * 5) + 2)}
    assert list(numbers) == sorted(n for n in expected if 10 <= n < 100)
    numbers, gray = read_batch(path, 0, 3, Decode(size=(64, 36), format="gray"))
    assert gray.shape == (3, 36, 64) and list(numbers) == [0, 1, 2]


def test_index_samples_once_per_rate_and_ranges_look_them_up() -> None:
    from amberlite.media.decode import _wanted, sample_frames

    rng = np.random.default_rng(3)
    pts = np.cumsum(rng.integers(300, 900, 120))  # variable frame rate, ticks of 1/12800 s
    index = FrameIndex(pts, Fraction(1, 12800))
    times = [Fraction(int(p - pts[0]), 12800) for p in pts]
    for fps in (Fraction(2), Fraction(30000, 1001), Fraction(25)):
        samples = index.samples(fps)
        assert samples is index.samples(fps) and not samples.flags.writeable  # once per rate
        count = -(-(index.end_pts - index.start_pts) * fps // 12800)  # k / fps < duration
        nearest = {  # brute force, exact: the nearest frame to k / fps, ties to the earlier
            min(range(len(times)), key=lambda i, t=Fraction(k) / fps: (abs(times[i] - t), i))
            for k in range(count)
        }
        assert list(samples) == sorted(nearest)
        copy = sample_frames(index, fps)
        assert copy.flags.writeable and list(copy) == list(samples)
        for start, end in [(0, 120), (0, 0), (7, 8), (13, 90), (119, 120), (60, 400)]:
            got = _wanted(index, start, end, fps)
            assert got.flags.writeable and got.dtype == np.int64
            assert list(got) == [n for n in samples if start <= n < end]


def test_fps_sampling_exact_ties_and_key(clips, tmp_path: Path) -> None:
    path = tmp_path / "thirty.mp4"
    render(path, [Scene(30, (90, 90, 90), texture=False)], 64, 36, fps=30)
    numbers, _ = read_batch(path, decode=Decode(fps=20))  # k/20 s ties between 30 fps frames
    assert list(numbers) == [n for n in range(30) if n % 3 != 2]  # ties go to the earlier
    assert Decode(size=(160, 90), fps=2).key() == "size=160x90;fps=2;format=rgb24"
    assert Decode().key() == "size=native;fps=all;format=rgb24"
    assert Decode(fps=29.97).fps == Fraction(2997, 100)
    with pytest.raises(ValueError):
        Decode(format="bgr")
    empty_n, empty_f = read_batch(path, 5, 5, Decode(size=(8, 4)))
    assert empty_n.shape == (0,) and empty_f.shape == (0, 4, 8, 3)


def test_read_luma_matches_gray_and_rgb(clips) -> None:
    path, _ = clips["cfr_mp4"]
    numbers, y, u, v = read_luma(path, (64, 36), start_frame=20, end_frame=60, chroma=True)
    assert list(numbers) == list(range(20, 60))
    assert y.shape == (40, 36, 64) and u.shape == v.shape == (40, 18, 32)
    _, gray = read_batch(path, 20, 60, Decode(format="gray"))
    small = np.stack([cv2.resize(g, (64, 36), interpolation=cv2.INTER_AREA) for g in gray])
    assert np.abs(small.astype(int) - y).max() <= 1
    _, rgb = read_batch(path, 20, 60, Decode(size=(64, 36)))
    luma = 16 + (219 / 255) * (rgb @ np.array([0.299, 0.587, 0.114]))  # BT.601 studio range
    assert np.abs(luma - y).mean() < 4
    n_native, y_native = read_luma(path, None, end_frame=2)
    assert y_native.shape == (2, H, W) and list(n_native) == [0, 1]


# --------------------------------------------------------------------------- failures


def test_truncated_and_non_media_files_raise_media_error(clips, tmp_path: Path) -> None:
    bad_mp4, bad_mkv = tmp_path / "cut.mp4", tmp_path / "cut.mkv"
    corrupt_copy(clips["cfr_mp4"][0], bad_mp4)
    corrupt_copy(clips["vfr_mkv"][0], bad_mkv)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio = tmp_path / "tone.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    for path in (bad_mp4, bad_mkv, text, audio, tmp_path / "absent.mp4"):
        for call in (probe, frame_index, read_luma, lambda p: list(read_frames(p))):
            with pytest.raises(MediaError) as err:
                call(path)
            assert str(path) in str(err.value)


def test_truncated_midway_yields_then_raises(clips, tmp_path: Path) -> None:
    src, _ = clips["vfr_mkv"]
    bad = tmp_path / "half.mkv"
    corrupt_copy(src, bad, keep=0.5)
    got = []
    with pytest.raises(MediaError, match="half.mkv"):
        for n, frame in read_frames(bad, index=frame_index(src)):
            got.append((n, read_stamp(frame)))
    assert 10 < len(got) < 120
    assert all(n == s for n, s in got[:-1])  # the last may be partly decoded
    with pytest.raises(MediaError, match="half.mkv"):
        read_batch(bad, index=frame_index(src))


# --------------------------------------------------------------------------- synth


def test_sample_film_cuts_are_where_the_picture_changes(film) -> None:
    path, truth = film
    assert probe(path).frame_count == truth.frame_count
    assert 20 <= truth.frame_count / 25 <= 40
    assert len(truth.cuts) >= 4 and {k for _, _, k in truth.transitions} == {"dissolve", "fade"}
    assert truth.flashes and truth.matches
    _, y = read_luma(path, (64, 36))
    diff = np.abs(np.diff(y.astype(np.int16), axis=0)).mean(axis=(1, 2))  # diff[n-1]: n vs n-1
    for cut in truth.cuts:
        assert diff[cut - 1] > 12, cut
    quiet = np.ones(truth.frame_count, bool)
    quiet[0] = False
    for n in (*truth.cuts, *truth.flashes, *(f + 1 for f in truth.flashes)):
        quiet[n] = False
    for start, end, _ in truth.transitions:
        quiet[start : end + 1] = False
    assert diff[quiet[1:]].max() < 6
    spans = truth.scene_spans
    assert spans[0][0] == 0 and spans[-1][1] == truth.frame_count
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 5000), min_size=1, max_size=40),
    probe=st.integers(-10, 200_000),
    hint=st.integers(-3, 45),
)
def test_frame_of_pts_answers_the_same_whatever_the_hint(gaps, probe, hint) -> None:
    pts = np.cumsum([0, *gaps])
    index = FrameIndex(pts, Fraction(1, 90_000))
    for p in (probe, int(pts[min(max(hint, 0), len(pts) - 1)])):
        expect = int(np.flatnonzero(pts == p)[0]) if p in pts else None
        if expect is None:
            with pytest.raises(KeyError):
                index.frame_of_pts(p, hint=hint)
        else:
            assert index.frame_of_pts(p, hint=hint) == expect == index.frame_of_pts(p)


def test_decoders_get_ffmpeg_threads_only_while_cores_are_left(
    clips, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode asking for FFmpeg's threads gets them while fewer decoders than cores are
    open in the process; beyond that (an executor's threads decoding side by side) each
    decoder runs on one thread; closing one frees its place."""
    from amberlite.media import decode

    monkeypatch.setattr(decode, "usable_cores", lambda: 2)
    path = str(clips["cfr_mp4"][0])

    def kind(stream) -> tuple[str, int]:
        return stream.codec_context.thread_type.name, stream.codec_context.thread_count

    with decode._decoder(path, True) as (_, first):
        assert kind(first) == ("AUTO", 0)
        with decode._decoder(path, True) as (_, second):
            assert kind(second) == ("NONE", 1)
        with decode._decoder(path, False) as (_, asked_none):
            assert kind(asked_none) == ("NONE", 1)
    with decode._decoder(path, True) as (_, again):
        assert kind(again) == ("AUTO", 0)
    assert decode._open_decoders == 0

"""Model runs: built-in annotators on generated media, annotators from definition files, the
atomic switch between runs, old runs by version, a SIGKILLed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pyarrow as pa
import pytest

import amberlite
from amberlite.errors import AnnotationError
from amberlite.media.synth import Scene, mux_subtitles, render, subtitle_text

CUES = [(0.2, 0.9, "Hello there"), (1.0, 1.8, "Black glove\nsecond line")]


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A 160x90 clip: a hard cut at 30, a dissolve from 60, a fade from 100 (140 frames)."""
    d = tmp_path_factory.mktemp("runs_media")
    scenes = [
        Scene(frames=30, background=(200, 40, 40), position=(0.3, 0.5), radius=0.25, seed=1),
        Scene(frames=30, background=(40, 160, 60), position=(0.6, 0.4), radius=0.25, seed=2),
        Scene(frames=40, background=(40, 60, 200), transition_in="dissolve",
              transition_frames=12, seed=3),
        Scene(frames=40, background=(220, 200, 40), transition_in="fade",
              transition_frames=16, seed=4),
    ]  # fmt: skip
    truth = render(d / "film.mp4", scenes, width=160, height=90)
    return d / "film.mp4", truth


@pytest.fixture(scope="module")
def rstore(tmp_path_factory, film):
    path, _ = film
    d = path.parent
    mux_subtitles(path, d / "movtext.mp4", [("mov_text", CUES, "eng")])
    mux_subtitles(path, d / "streams.mkv",
                  [("srt", CUES[:1], "fra"), ("vtt", CUES[1:], None),
                   ("ass", [(0.3, 0.5, "{\\i1}styled{\\i0}\nline")], "deu")])  # fmt: skip
    (d / "movtext.en.srt").write_text(subtitle_text("srt", [(2.0, 9.0, "sidecar cue")]))
    (d / "movtext.vtt").write_text(subtitle_text("vtt", [(0.0, 0.5, "web cue")]))
    (d / "movtext.notes.srt").write_text(subtitle_text("srt", [(0.0, 0.5, "not a sidecar")]))
    store = amberlite.open(tmp_path_factory.mktemp("runs") / "store")
    store.ingest([path, d / "movtext.mp4", d / "streams.mkv"])
    return store


def test_subtitles_from_streams_and_sidecars(rstore):
    info = rstore.annotations.run("subtitles")
    assert info.rows == 2 + 3 + 2
    got = sorted(
        (r["asset"], r["stream"], r["language"], r["start_s"], r["end_s"], r["text"])
        for r in rstore.annotations.list("subtitles")
    )
    duration = rstore.assets().filter(alias="movtext")["duration_s"][0]
    assert got == sorted(
        [
            ("movtext", "1:mov_text", "eng", 0.2, 0.9, "Hello there"),
            ("movtext", "1:mov_text", "eng", 1.0, 1.8, "Black glove\nsecond line"),
            ("movtext", "movtext.en.srt", "en", 2.0, duration, "sidecar cue"),  # clipped
            ("movtext", "movtext.vtt", None, 0.0, 0.5, "web cue"),
            ("streams", "1:srt", "fra", 0.2, 0.9, "Hello there"),
            ("streams", "2:webvtt", None, 1.0, 1.8, "Black glove\nsecond line"),
            ("streams", "3:ssa", "deu", 0.3, 0.5, "styled\nline"),
        ]
    )


def test_transitions_are_typed_with_spans(rstore, film):
    _, truth = film
    rstore.annotations.run("transitions", "film")
    got = [(r["label"], r["start_frame"], r["end_frame"])
           for r in rstore.annotations.list("transitions", asset="film")]  # fmt: skip
    assert [g[0] for g in got] == ["cut", "dissolve", "fade"]
    assert got[0][1:] == (truth.cuts[0], truth.cuts[0])
    for (kind, lo, hi), (start, end, true_kind) in zip(got[1:], truth.transitions):
        assert kind == true_kind
        assert lo <= (start + end) // 2 <= hi  # the span holds the transition's middle
        assert start - 4 <= lo and hi <= end + 4


def test_subjects_box_each_shot_around_its_disc(rstore):
    info = rstore.annotations.run("subjects", "film")
    boxes = rstore.annotations.list("subjects", asset="film")
    assert info.rows == len(boxes) == 4  # one per shot
    x0, y0, x1, y1 = boxes[0]["box"]  # disc at (0.3, 0.5), radius 0.25 of the height
    half_w = 0.25 * 90 / 160
    assert x0 == pytest.approx(0.3 - half_w, abs=0.06) and x1 == pytest.approx(
        0.3 + half_w, abs=0.06
    )
    assert y0 == pytest.approx(0.25, abs=0.06) and y1 == pytest.approx(0.75, abs=0.06)
    assert boxes[1]["box"][0] > x0 + 0.15  # the second shot's disc is further right


def _rows(asset_id: str, texts: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table(
        {
            "asset_id": [asset_id] * n,
            "start_s": [0.1 * i for i in range(n)],
            "end_s": [0.1 * i + 0.05 for i in range(n)],
            "box": pa.array([[0.1, 0.1, 0.2, 0.2]] * n, pa.list_(pa.float64(), 4)),
            "label": texts,
        }
    )


def test_runs_switch_atomically_and_old_versions_stay_readable(rstore):
    ann = rstore.annotations
    film_id = rstore.resolve_assets("film")[0]
    other_id = rstore.resolve_assets("streams")[0]
    first = ann.write_run("detector", _rows(film_id, ["a", "b"]), type="subjects")
    ann.write_run("detector", _rows(other_id, ["o"]), type="subjects")
    assert sorted(r["label"] for r in ann.list("subjects") if r["author"] == "detector@1") == [
        "a", "b", "o",
    ]  # fmt: skip
    second = ann.write_run("detector", _rows(film_id, ["c"]), type="subjects")
    labels = sorted(r["label"] for r in ann.list("subjects") if r["author"] == "detector@1")
    assert labels == ["c", "o"]  # film's older run left whole; the other asset's run stays
    assert [r["label"] for r in ann.list("subjects", run=first.run_id)] == ["a", "b"]
    v2 = ann.write_run("detector", _rows(film_id, ["v2"]), type="subjects", version=2)
    now = {r["label"] for r in ann.list("subjects") if r["author"].startswith("detector")}
    assert now == {"v2"}  # the newest version is what reads see
    old = {r["label"] for r in ann.list("subjects", version=1)}
    assert {"c", "o"} <= old and "v2" not in old
    assert ann.get(f"r{second.run_id}-0")["label"] == "c"
    assert ann.get(f"r{v2.run_id}-0")["author"] == "detector@2"
    assert [r["run"] for r in ann.runs("detector")][:2] == [v2.run_id, second.run_id]


def test_bad_model_output_is_refused_whole(rstore):
    ann = rstore.annotations
    film_id = rstore.resolve_assets("film")[0]
    before = len(ann.runs())
    bad = _rows(film_id, ["x", "y"]).set_column(
        3, "box", pa.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 1.5, 0.6]], pa.list_(pa.float64(), 4))
    )
    with pytest.raises(AnnotationError, match="row 1: box .* outside the frame"):
        ann.write_run("detector", bad, type="subjects")
    late = _rows(film_id, ["x"]).set_column(2, "end_s", pa.array([999.0]))
    with pytest.raises(AnnotationError, match="row 0: time range .* outside the asset"):
        ann.write_run("detector", late, type="subjects")
    with pytest.raises(AnnotationError, match="unknown column 'colour'"):
        ann.write_run("detector", _rows(film_id, ["x"]).append_column("colour", [["red"]]),
                      type="subjects")  # fmt: skip
    assert len(ann.runs()) == before


ANNOTATORS = """
from amberlite import annotation_type, annotator
import pyarrow as pa

marks = annotation_type("marks", fields={"shot_index": pa.int64()})

@annotator(type="marks", entity="shot", version=1)
def shot_marks(shot):
    return [{"start_s": shot.start_s, "end_s": shot.start_s, "label": "start",
             "shot_index": shot.index},
            {"start_s": shot.end_s, "end_s": shot.end_s, "label": "end",
             "shot_index": shot.index}]

@annotator(type="marks", entity="shot", version=1)
def overflow(shot):
    return [{"start_s": shot.start_s, "end_s": shot.end_s + 1.0, "label": "too long"}]
"""

KILLED_RUN = """
import sys, amberlite, pyarrow as pa
store = amberlite.open(sys.argv[1])
aid = store.resolve_assets("film")[0]
store.annotations.write_run("killed", pa.table({"asset_id": [aid], "start_s": [0.0],
    "end_s": [0.1], "label": ["new"]}), type="subjects")
"""


def test_definition_file_annotators_and_a_killed_run(rstore, tmp_path):
    path = tmp_path / "marks.py"
    path.write_text(ANNOTATORS)
    rstore.apply(path)
    info = rstore.annotations.run("shot_marks", "film")
    marks = rstore.annotations.list("marks")
    assert info.rows == len(marks) == 2 * 4
    assert sorted({m["shot_index"] for m in marks}) == [0, 1, 2, 3]
    with pytest.raises(AnnotationError, match="outside its entity"):
        rstore.annotations.run("overflow", "film")
    assert [r["annotator"] for r in rstore.annotations.runs("overflow")] == []

    aid = rstore.resolve_assets("film")[0]
    rstore.annotations.write_run("killed", pa.table({"asset_id": [aid], "start_s": [0.0],
                                 "end_s": [0.1], "label": ["old"]}), type="subjects")  # fmt: skip
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN)
    proc = subprocess.run(
        [sys.executable, str(script), str(rstore.root)],
        env={**os.environ, "AMBERLITE_FAULT": "annotation_run_before_commit"},
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    seen = [r["label"] for r in rstore.annotations.list("subjects") if r["author"] == "killed@1"]
    assert seen == ["old"]  # the previous complete run, not the killed one
    assert rstore.annotations.gc() == 1
    on_disk = sorted((rstore.root / "annotations" / "subjects" / "killed@1").glob("*.parquet"))
    assert len(on_disk) == 1

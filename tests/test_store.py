"""The core contract: ingest, apply (change classification), get/materialize, failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import amberlite
from amberlite.errors import ChangeRefused, DefinitionError, ResolveError, StoreError
from amberlite.media.decode import Decode, read_batch

MEAN_COLOR = """
import pyarrow as pa
from amberlite import Decode, feature

@feature(entity="asset", version={version}, output=pa.list_(pa.float32(), 3),
         decode=Decode(size=(32, 18)))
def mean_color(asset):
    return asset.frames().reshape(-1, 3).mean(axis=0) / {scale}
"""


def test_ingest_content_identity_and_failures(store, media_dir, tmp_path):
    report = store.ingest(
        [
            media_dir / "clip_a.mp4",
            media_dir / "broken.mp4",
            media_dir / "notes.mp4",
            media_dir / "clip_b.mp4",
        ]
    )
    assert [a["alias"] for a in report.assets] == ["clip_a", "clip_b"]
    failed = dict(report.failures)
    assert set(failed) == {str(media_dir / "broken.mp4"), str(media_dir / "notes.mp4")}
    assert all(reason for reason in failed.values())
    assert len(store.status()["ingest_failures"]) == 2
    # A renamed copy is the same asset: its path moves, its id and alias stay.
    moved = shutil.copy(media_dir / "clip_a.mp4", tmp_path / "renamed.mp4")
    again = store.ingest([moved])
    assert again.assets[0]["asset_id"] == report.assets[0]["asset_id"]
    assert again.assets[0]["alias"] == "clip_a"
    assert again.assets[0]["path"] == str(Path(moved).absolute())
    assert store.assets().height == 2
    # Exact frame count from the packets.
    assert store.assets().filter(alias="clip_a")["frame_count"][0] == 60


def test_alias_collision_gets_suffix(store, media_dir, tmp_path):
    other = tmp_path / "x" / "clip_a.mp4"
    other.parent.mkdir()
    shutil.copy(media_dir / "clip_b.mp4", other)
    store.ingest([media_dir / "clip_a.mp4", other])
    assert sorted(store.assets()["alias"]) == ["clip_a", "clip_a-2"]


def test_get_computes_only_missing_and_matches_decode(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])
    store.apply(defs(MEAN_COLOR.format(version=1, scale=255.0)))
    first = store.materialize("mean_color")
    assert (first.requested, first.computed, first.stored) == (1, 1, 0)
    store.ingest([media_dir / "clip_b.mp4"])
    second = store.materialize("mean_color")
    assert (second.requested, second.computed, second.stored) == (2, 1, 1)
    df = store.get("mean_color", assets=["clip_a"])
    assert df.columns == ["id", "ref", "asset", "asset_id", "mean_color"]
    _, frames = read_batch(media_dir / "clip_a.mp4", decode=Decode(size=(32, 18)))
    expected = frames.reshape(-1, 3).mean(axis=0) / 255.0
    np.testing.assert_allclose(np.asarray(df["mean_color"][0]), expected, rtol=1e-5)
    assert store.materialize("mean_color").computed == 0


def test_apply_classifies_changes(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])
    path = defs(MEAN_COLOR.format(version=1, scale=255.0))
    assert [c.resolution for c in store.apply(path)] == ["new"]
    assert [c.resolution for c in store.apply(path)] == ["unchanged"]
    v1 = store.get("mean_color")["mean_color"][0].to_list()
    # Comments and formatting do not change the fingerprint.
    path.write_text(path.read_text().replace("def mean_color", "# a comment\ndef mean_color"))
    assert [c.resolution for c in store.plan_apply(path)] == ["unchanged"]
    # Code changed without a version bump is refused, and nothing is applied.
    path.write_text(MEAN_COLOR.format(version=1, scale=1.0))
    with pytest.raises(ChangeRefused, match="without a version bump"):
        store.apply(path)
    assert store.get("mean_color")["mean_color"][0].to_list() == v1
    # A new version keeps the old values readable as name@1.
    path.write_text(MEAN_COLOR.format(version=2, scale=1.0))
    assert [c.resolution for c in store.apply(path)] == ["new_version"]
    v2 = store.get("mean_color")["mean_color"][0].to_list()
    assert np.allclose(np.asarray(v2) / 255.0, v1, rtol=1e-5)
    assert store.get("mean_color@1", compute=False)["mean_color"][0].to_list() == v1
    # The registry survives reopening the store in a new process-like state.
    reopened = amberlite.open(store.root)
    assert reopened.feature("mean_color").version == 2
    assert reopened.get("mean_color@1", compute=False).height == 1


def test_force_accepts_changed_code(store, media_dir, defs):
    path = defs(MEAN_COLOR.format(version=1, scale=255.0))
    store.apply(path)
    path.write_text(MEAN_COLOR.format(version=1, scale=2.0))
    assert [c.resolution for c in store.apply(path, force=True)] == ["changed"]
    assert [c.resolution for c in store.apply(path)] == ["unchanged"]


def test_failure_recorded_batch_goes_on_and_retry(store, media_dir, defs, tmp_path):
    marker = tmp_path / "fixed"
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store.apply(
        defs(f"""
import pathlib
import pyarrow as pa
from amberlite import feature

@feature(entity="shot", output=pa.int64())
def length(shot):
    if shot.asset.alias == "clip_b" and not pathlib.Path({str(marker)!r}).exists():
        raise RuntimeError("detector crashed on " + shot.id)
    return shot.end_frame - shot.start_frame
""")
    )
    stats = store.materialize("length")
    assert stats.computed == 3 and stats.failed == 2
    fails = store.failures("length")
    assert fails.height == 2 and set(fails["asset"]) == {"clip_b"}
    assert "RuntimeError: detector crashed" in fails["error"][0]
    assert store.get("length").height == 3
    # Without --retry-failed, failed entities are not tried again.
    assert store.materialize("length").failed == 0
    marker.touch()
    retried = store.materialize("length", retry_failed=True)
    assert retried.computed == 2 and retried.failed == 0
    assert store.failures("length").height == 0
    assert sorted(store.get("length")["length"]) == [20, 20, 20, 20, 20]


def test_inputs_run_first_and_derived_entities(store, media_dir):
    store.ingest([media_dir / "clip_a.mp4"])
    examples = Path(__file__).resolve().parent.parent / "examples" / "basic" / "features.py"
    store.apply(examples)
    stats = store.materialize("shot_brightness")

    # Dependencies first: the segmenter that makes the shots, then the input, then the feature.
    def order(st):
        return [n for i in st.inputs for n in order(i)] + [st.feature.split("@")[0]]

    assert order(stats) == ["shots", "shot_color", "shot_brightness"]
    shots = store.entities("shot")
    assert shots["start_frame"].to_list() == [0, 20, 40]
    assert shots["end_frame"].to_list() == [20, 40, 60]
    assert shots["start_s"].to_list() == pytest.approx([0.0, 0.8, 1.6])
    bright = store.get("shot_brightness")
    assert bright.height == 3
    assert set(bright["id"]) == set(shots["id"])


def test_bad_names_and_unknowns(store, media_dir, defs):
    with pytest.raises(DefinitionError):
        amberlite.feature(entity="asset", output=__import__("pyarrow").int64(), name="../../etc")(
            lambda a: 1
        )
    with pytest.raises(ResolveError, match="did you mean 'shots'"):
        store.get("shotz")
    store.ingest([media_dir / "clip_a.mp4"])
    with pytest.raises(ResolveError, match="did you mean 'clip_a'"):
        store.get("shots", assets=["clip_aa"])
    with pytest.raises(DefinitionError, match="declares no"):
        store.apply(defs("x = 1\n"))
    with pytest.raises(DefinitionError, match="error while loading"):
        store.apply(defs("import not_a_module_anywhere\n", "bad.py"))


SCALED = """
import pyarrow as pa
from amberlite import feature

def positive(scale):
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")

@feature(entity="asset", version=1, output=pa.float64(), params={"scale": 1.0}, check=positive)
def scaled(asset, scale):
    return float(asset.record.frame_count) * scale
"""


def test_a_feature_s_check_refuses_its_parameters_before_computing(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])
    store.apply(defs(SCALED, "scaled.py"))
    with pytest.raises(ResolveError, match=r"^scaled: scale must be > 0, got -2$"):
        store.get("scaled", params={"scale": -2})
    with pytest.raises(ResolveError, match="scale must be > 0, got 0"):
        store.query("SELECT scaled(scale=0) FROM assets")
    assert store.failures().height == 0  # refused, not failed: nothing ran
    assert store.get("scaled", params={"scale": 2})["scaled"].to_list() == [120.0]

    def non_negative(k):
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")

    with pytest.raises(DefinitionError, match="default parameters fail its check: k must be"):
        amberlite.feature(
            entity="asset",
            output=__import__("pyarrow").int64(),
            params={"k": -1},
            name="f",
            check=non_negative,
        )(lambda a, k: 1)


def test_schema_version_is_checked(tmp_path):
    import duckdb

    amberlite.open(tmp_path / "s")
    con = duckdb.connect(str(tmp_path / "s" / "catalog.duckdb"))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        amberlite.open(tmp_path / "s")


def test_compaction_keeps_values(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4"])
    store.materialize("shots")
    store.ingest([media_dir / "clip_b.mp4"])
    path = defs(MEAN_COLOR.format(version=1, scale=255.0))
    store.apply(path)
    store.materialize("mean_color", assets=["clip_a"])
    store.materialize("mean_color", assets=["clip_b"])
    before = store.get("mean_color", compute=False).sort("id")
    assert len(store.value_files("mean_color")) == 2
    merged = store.compact("mean_color")
    assert list(merged.values()) == [2]
    files = store.value_files("mean_color")
    assert len(files) == 1 and all(Path(f).exists() for f in files)
    after = store.get("mean_color", compute=False).sort("id")
    assert after.equals(before)
    assert store.materialize("mean_color").computed == 0


def test_frames_by_time_range_on_vfr(store, tmp_path):
    from amberlite.media.synth import Scene, render

    truth = render(
        tmp_path / "vfr.mkv",
        [Scene(frames=30, background=(50, 50, 50))],
        width=64,
        height=36,
        vfr=True,
        stamp=True,
    )
    store.ingest([tmp_path / "vfr.mkv"])
    view = store.ctx.asset_views(store.resolve_assets(["vfr"]), Decode())[0]
    times = truth.times
    numbers, frames = view.frames_between(times[5], times[12])
    assert numbers.tolist() == list(range(5, 12))
    assert len(frames) == 7


def test_a_store_with_no_videos_answers_empty_not_a_traceback(store):
    for name in ("shots", "shot_embedding"):
        assert store.get(name).height == 0
        assert store.materialize(name, progress=False).requested == 0
    assert store.query("SELECT id, shot_embedding FROM shots").height == 0

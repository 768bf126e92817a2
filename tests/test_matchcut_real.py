"""Match cuts that hold up on real films, each failure seen on real footage reproduced with
generated media: a shot split around a very short piece does not match its other half, very
short shots do not fill the list, the out/in frames of a report are not black mid-fade, and a
non-16:9 clip keeps its aspect ratio in the report. (Near-duplicates across films:
tests/test_matchcut.py::test_the_same_footage_in_two_films_never_pairs.)"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import amberlite
from amberlite.errors import AmberliteError, AqlError
from amberlite.library.matchcut import representative_frame
from amberlite.matchcut import MIN_SHOT, match_cut, top_pairs
from amberlite.matchcut.report import THUMB, fit, letterbox
from amberlite.media.synth import Scene, render
from amberlite.search.kernel import keep_first_of_pairs, pairs_above

W, H = 160, 90

# A take split in two around an 8-frame insert: X1 | insert | X2 is one camera set-up (same
# background, same disc moving on), the insert a different, busy shot.
_X = Scene(36, (200, 120, 40), "disc", (30, 30, 200), (0.2, 0.5), 0.25, motion=(1.2, 0.0), seed=5)
SPLIT = [
    Scene(36, (20, 40, 110), "rect", (240, 240, 240), (0.5, 0.4), 0.2, seed=1),
    _X,
    Scene(8, (40, 150, 60), "disc", (250, 250, 60), (0.5, 0.5), 0.3, motion=(3.0, 2.0), seed=3),
    dataclasses.replace(_X, position=(0.2 + 1.2 * 44 / 25, 0.5)),  # the disc where it was
    Scene(36, (120, 40, 140), "none", pan=(3, 0), seed=6),
    Scene(36, (130, 130, 130), "rect", (200, 20, 20), (0.7, 0.6), 0.15, seed=7),
]
# Shot 1 ends in a fade through black into shot 2 (frames 15-29 of scene 2 darken, 30-44
# brighten), shot 2 ends in a cut.
FADE = [
    Scene(40, (30, 60, 160), "disc", (250, 250, 250), (0.3, 0.5), 0.2, seed=11),
    Scene(40, (200, 160, 60), "rect", (20, 20, 20), (0.6, 0.5), 0.2, seed=12),
    Scene(60, (60, 160, 90), "disc", (240, 60, 60), (0.6, 0.4), 0.2, seed=13,
          transition_in="fade", transition_frames=30),
    Scene(40, (150, 40, 40), "none", seed=14),
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("real")
    render(d / "split.mp4", SPLIT, width=W, height=H, seed=1)
    render(d / "fade.mp4", FADE, width=W, height=H, seed=2)
    qcif = [Scene(20, c, "disc", (255, 255, 255), (0.5, 0.5), 0.3, seed=20 + i)
            for i, c in enumerate([(200, 60, 60), (60, 200, 60), (60, 60, 200)])]  # fmt: skip
    render(d / "qcif.mp4", qcif, width=176, height=144, seed=3)
    s = amberlite.open(d / "store")
    report = s.ingest([d / "split.mp4", d / "fade.mp4", d / "qcif.mp4"])
    assert not report.failures
    return s


def _shots(store, alias: str):
    return store.entities("shot", alias).sort("index")


def test_split_take_does_not_match_its_other_half(store) -> None:
    shots = _shots(store, "split")
    assert shots["end_frame"].to_list() == [36, 72, 80, 116, 152, 188]  # the insert is 8 frames
    dedup = store.get("dedup", "split").join(shots, on=["id", "ref", "asset", "asset_id"])
    assert dedup.sort("index")["dedup"].to_list() == [True] * 6  # the halves differ: no dup
    for kind in ("color", "motion"):
        pairs = top_pairs(store, ["split"], kind, top=20).table
        got = {(a, b) for a, b in zip(pairs["shot_a"], pairs["shot_b"])}
        assert (1, 3) not in got  # X1 | 8-frame insert | X2: adjacent once the insert is out
        assert not {a for p in got for a in p} & {2}  # the 8-frame shot never pairs
    # the control: counting the insert as a shot, the halves are the best colour pair
    loose = top_pairs(store, ["split"], "color", top=1, min_shot=0).table
    assert (loose["shot_a"][0], loose["shot_b"][0]) == (1, 3)
    tight = top_pairs(store, ["split"], "color", top=20, min_shot=1.5).table
    assert tight.height == 0  # every shot is 1.44 s or shorter


def test_min_shot_is_checked_everywhere(store) -> None:
    with pytest.raises(AmberliteError, match="min_shot"):
        top_pairs(store, ["split"], "color", min_shot=-1)
    rows = store.query("MATCH shots OF ('split') BY color TOP 20 WITH (min_shot=0)")
    assert (1, 3) in set(zip(rows["shot_a"], rows["shot_b"]))
    default = store.query("MATCH shots OF ('split') BY color TOP 20")
    assert (1, 3) not in set(zip(default["shot_a"], default["shot_b"]))
    with pytest.raises(AqlError, match="min_shot must be seconds"):
        store.query("MATCH shots BY color TOP 3 WITH (min_shot=-2)")
    from amberlite.cli.matchcut import MIN_SHOT as CLI_DEFAULT

    assert CLI_DEFAULT == MIN_SHOT


def _luma(rgb: np.ndarray) -> float:
    return float(rgb.astype(np.float32).mean())


def test_out_and_in_frames_skip_the_fade(store, tmp_path: Path) -> None:
    shots = _shots(store, "fade")
    assert shots.height == 4
    view = store.ctx.asset_views(store.resolve_assets(["fade"]), amberlite.Decode())[0]
    starts, ends = shots["start_frame"].to_list(), shots["end_frame"].to_list()
    # the fade occupies frames 80-109: it darkens from 80, is black near 94-95, brightens to 109
    assert 80 <= ends[1] <= 110
    out = representative_frame(view.path, view.index, starts[1], ends[1], "out")
    first = representative_frame(view.path, view.index, starts[2], ends[2], "in")
    assert 76 <= out <= 82  # shot 1's last frames before the darkening
    assert 104 <= first <= 112  # shot 2 once the fade is over
    # on shots without a transition the cut's own frames are representative
    assert representative_frame(view.path, view.index, starts[0], ends[0], "out") == ends[0] - 1
    assert representative_frame(view.path, view.index, starts[3], ends[3], "in") == starts[3]
    # the report shows them: A's out frame is as bright as the shot, not black
    pairs = match_cut(store, ["fade"], "color", top=5, report_dir=tmp_path / "fade_report")
    assert pairs.height == 3  # (0, 2), (0, 3), (1, 3)
    frames = tmp_path / "fade_report" / "frames"
    for k in range(1, pairs.height + 1):
        for side in "ab":
            assert _luma(np.asarray(Image.open(frames / f"{k:03d}_{side}.jpg"))) > 40


def test_report_keeps_the_aspect_ratio(store, tmp_path: Path) -> None:
    assert fit(176, 144) == (220, 180)  # pillarbox
    assert fit(1920, 800) == (320, 134)  # 2.4:1 letterbox
    assert fit(720, 576, aspect=64 / 45) == (320, 180)  # anamorphic PAL 16:9
    boxed = letterbox(np.full((134, 320, 3), 200, np.uint8))
    assert boxed.shape == (180, 320, 3) and boxed[:20].max() == 0 and boxed[-20:].max() == 0
    out = tmp_path / "qcif_report"
    pairs = match_cut(store, ["qcif"], "color", top=1, report_dir=out)
    assert pairs.height == 1  # shots 0 and 2
    for name in ("001_a.jpg", "001_b.jpg"):
        img = np.asarray(Image.open(out / "frames" / name)).astype(np.int16)
        assert img.shape == (*THUMB[::-1], 3)
        assert img[:, :45].max() < 20 and img[:, -45:].max() < 20  # the pillars
        picture = img[:, 55:-55]
        assert picture.mean() > 60  # the frame itself, 220 px wide
        # the disc stays round: as wide as it is high (radius 0.3 of the height = 54 px)
        white = (picture.min(axis=2) > 200).astype(np.int8)
        rows, cols = np.flatnonzero(white.any(axis=1)), np.flatnonzero(white.any(axis=0))
        assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 6
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB")).astype(np.int16)
    a = np.asarray(Image.open(out / "frames" / "001_a.jpg")).astype(np.int16)
    y0 = 40 + 40  # title, caption
    np.testing.assert_allclose(sheet[y0 : y0 + 180, 12 : 12 + 320].mean(), a.mean(), atol=3)


def test_cross_asset_duplicate_rule_is_the_dedup_rule() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    x[40] = x[3] + 0.01 * rng.normal(size=16)  # a copy in another group
    x[50] = x[40] + 0.01 * rng.normal(size=16)  # a copy of the copy
    x[10] = x[5] + 0.01 * rng.normal(size=16)  # a copy in the same group: not across
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = np.repeat([0, 1, 2], 20)
    a, b = pairs_above(x, 0.95, groups=groups, block_elems=16 * 60)  # several blocks
    sims = x @ x.T
    want = [(i, j) for i in range(60) for j in range(i + 1, 60)
            if sims[i, j] >= 0.95 and groups[i] != groups[j]]  # fmt: skip
    assert list(zip(a.tolist(), b.tolist())) == want
    keep = keep_first_of_pairs(60, a, b)
    assert np.flatnonzero(~keep).tolist() == [40, 50]


def test_cli_min_shot(store) -> None:
    from amberlite.cli import main

    args = ["--store", str(store.root), "matchcut", "split", "--type", "color", "--top", "20"]
    loose = CliRunner().invoke(main, [*args, "--min-shot", "0"])
    assert loose.exit_code == 0, loose.output
    assert re.search(r"split/1\b", loose.output) and re.search(r"split/2\b", loose.output)
    default = CliRunner().invoke(main, args)
    assert default.exit_code == 0 and not re.search(r"split/2\b", default.output)
    bad = CliRunner().invoke(main, [*args, "--min-shot", "-1"])
    assert bad.exit_code == 2


ORDER_FEATURES = """
import json
import os

import pyarrow as pa

from amberlite import feature


@feature(entity="shot", version=1, output=pa.int64(), batch="asset")
def seen_whole(shots):
    with open(os.environ["AMBERLITE_TEST_ORDER_LOG"], "a") as f:
        f.write(json.dumps([s.start_frame for s in shots]) + "\\n")
    return [s.index for s in shots]


@feature(entity="shot", version=1, output=pa.int64(), batch=2)
def seen_pairs(shots):
    with open(os.environ["AMBERLITE_TEST_ORDER_LOG"], "a") as f:
        f.write(json.dumps([s.start_frame for s in shots]) + "\\n")
    return [s.index for s in shots]
"""


def test_shots_are_claimed_and_batched_in_time_order(store, tmp_path: Path, monkeypatch):
    import json

    import amberlite.run.resolve as resolve
    from amberlite.run.executor import LocalExecutor

    log = tmp_path / "order.log"
    monkeypatch.setenv("AMBERLITE_TEST_ORDER_LOG", str(log))
    monkeypatch.setattr(resolve, "DEFAULT_BATCH", 1)  # claims of 3 of the 6 shots
    monkeypatch.setattr(resolve, "CLAIM_BATCHES", 1)
    (tmp_path / "order.py").write_text(ORDER_FEATURES)
    store.apply(tmp_path / "order.py")
    starts = _shots(store, "split")["start_frame"].to_list()
    store.materialize("seen_whole", "split", executor=LocalExecutor(workers=2))
    assert [json.loads(x) for x in log.read_text().splitlines()] == [starts]  # the whole asset
    log.unlink()
    store.materialize("seen_pairs", "split", executor=LocalExecutor(workers=1))
    batches = [json.loads(x) for x in log.read_text().splitlines()]
    assert batches == [starts[i : i + 2] for i in range(0, 6, 2)]  # neighbours, in time order

"""The learned shot segmenter (TransNetV2, built in): it finds the cuts of a generated clip on
CPU, matches the package's own windowing, and its shots are an entity set of their own —
chosen per store or named in AQL with USING, never mixed with the classical ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amberlite
from amberlite.errors import AqlError, ResolveError
from amberlite.library.segment import shots
from amberlite.media.synth import Scene, render

CLASSICAL = f"shots@{shots.version}"  # the default segmenter of shot
CUTS = (30, 56)  # an 80-frame clip of three hard-cut scenes (two model windows)
SHOT_LEN = """
import pyarrow as pa
from amberlite import feature

@feature(entity="shot", output=pa.int64(), batch="asset")
def shots_in_asset(shots):
    return [len(shots)] * len(shots)
"""


@pytest.fixture(scope="module")
def learned(tmp_path_factory) -> amberlite.Store:
    """A store of one clip, segmented by both methods (TransNetV2 runs once for the module)."""
    root = tmp_path_factory.mktemp("transnet")
    clip = root / "cuts.mp4"
    palette = [(200, 40, 40), (40, 160, 60), (40, 60, 200)]
    lengths = [CUTS[0], CUTS[1] - CUTS[0], 80 - CUTS[1]]
    render(
        clip,
        [
            Scene(
                frames=n, background=palette[i], position=(0.3 + 0.2 * i, 0.5), radius=0.2, seed=i
            )
            for i, n in enumerate(lengths)
        ],
        width=160,
        height=90,
        seed=3,
    )
    store = amberlite.open(root / "store")
    store.ingest([clip], progress=False)
    (root / "defs.py").write_text(SHOT_LEN)
    store.apply(root / "defs.py")
    return store


def _spans(df) -> list[tuple[int, int]]:
    return list(zip(df["start_frame"].to_list(), df["end_frame"].to_list()))


def test_transnetv2_finds_the_cuts_of_a_generated_clip_on_cpu(learned):
    got = learned.query("SELECT start_frame, end_frame FROM shots USING transnetv2 OF 'cuts'")
    assert _spans(got) == [(0, CUTS[0]), (CUTS[0], CUTS[1]), (CUTS[1], 80)]


def test_windowing_matches_the_package_predict_frames():
    import torch

    from amberlite.library import transnet
    from amberlite.run.models import loaded

    net = loaded(transnet.TRANSNET).module  # the process's copy (loaded by the test above)
    assert not torch.are_deterministic_algorithms_enabled()  # its global switch is undone
    frames = np.random.default_rng(0).integers(0, 256, (30, 27, 48, 3), dtype=np.uint8)
    with torch.inference_mode():
        want, _ = net.predict_frames(torch.from_numpy(frames), quiet=True)
        chunks = iter([frames[:20], frames[20:]])  # a stream split anywhere gives the same
        got = transnet.probabilities(chunks, lambda b: net(torch.from_numpy(b)), windows=1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_windows_per_call_change_nothing_but_speed():
    import torch

    from amberlite.library import transnet
    from amberlite.run.models import loaded

    model = loaded(transnet.TRANSNET)
    assert model.device == "cpu" and transnet.windows_per_call(model) == 1  # CPU: one at a time
    assert transnet.windows_per_call(model.module) == 1  # a module: its parameters' device
    gpu = type("OnGpu", (), {"device": "cuda:0"})()
    assert transnet.windows_per_call(gpu) == transnet.GPU_WINDOWS
    frames = np.random.default_rng(1).integers(0, 256, (260, 27, 48, 3), dtype=np.uint8)
    with torch.inference_mode():
        one = transnet.probabilities(iter([frames[:90], frames[90:]]), model)
        # 260 frames are 6 windows: 4 in the first call, 2 in the last (a batch of its own).
        many = transnet.probabilities(iter([frames]), model, windows=4)
    assert one.shape == many.shape == (260,)
    np.testing.assert_allclose(one, many, atol=1e-5)
    with pytest.raises(ValueError, match="windows must be >= 1"):
        transnet.probabilities(iter([frames]), model, windows=0)


def test_learned_and_classical_shots_are_kept_apart(learned):
    classical = learned.query("SELECT id, start_frame, end_frame, shots_in_asset FROM shots")
    tn = learned.query(
        "SELECT id, start_frame, end_frame, shots_in_asset FROM shots USING transnetv2"
    )
    assert not set(classical["id"]) & set(tn["id"])  # ids of their own: values never shared
    assert all(i.endswith("~transnetv2@1") for i in tn["id"])
    assert tn["shots_in_asset"].to_list() == [3, 3, 3]
    # get() reads the store's segmentation only, though both have values stored
    assert learned.get("shots_in_asset", compute=False)["id"].to_list() == classical["id"].to_list()
    producers = learned.catalog.query(
        "SELECT producer, count(*) FROM entities GROUP BY producer ORDER BY producer"
    )
    assert [p.split("/")[0] for p, _ in producers] == [CLASSICAL, "transnetv2@1"]
    # Other parameters are another entity set again, segmented on demand.
    plan = learned.explain("SELECT id FROM shots USING transnetv2(threshold=0.3)")
    assert "transnetv2@1(threshold=0.3): stored 0, missing 1, failed 0 -> compute" in plan
    # Both compared in one query: each learned shot inside a classical one.
    pairs = learned.query(
        "SELECT c.index AS c, l.index AS l FROM shots USING shots c "
        "JOIN shots USING transnetv2 l ON l DURING c ORDER BY c"
    )
    assert pairs.height >= 1


def test_the_store_setting_chooses_the_method_of_shots(learned):
    before = learned.query("SELECT id FROM shots")
    try:
        assert learned.set_segmenter("shot", "transnetv2") == "transnetv2@1"
        now = learned.query("SELECT id FROM shots")
        assert all(i.endswith("~transnetv2@1") for i in now["id"])
        ents = learned.query("SHOW ENTITIES").filter(entity_type="shot")
        assert ents["producer"].to_list() == ["transnetv2@1"]
        back = learned.query("SELECT id FROM shots USING shots")
        assert back["id"].to_list() == before["id"].to_list()
    finally:
        assert learned.set_segmenter("shot", None) == CLASSICAL
    assert learned.query("SELECT id FROM shots")["id"].to_list() == before["id"].to_list()


def test_the_segmenter_command_shows_and_sets_the_method(learned):
    from click.testing import CliRunner

    from amberlite.cli import main

    root = ["--store", str(learned.root)]
    shown = CliRunner().invoke(main, [*root, "segmenter", "shot"])
    assert shown.exit_code == 0 and shown.output.strip() == CLASSICAL
    chosen = CliRunner().invoke(
        main, [*root, "segmenter", "shot", "transnetv2", "--param", "min_frames=4"]
    )
    assert chosen.exit_code == 0 and chosen.output.strip() == "transnetv2@1(min_frames=4)"
    back = CliRunner().invoke(main, [*root, "segmenter", "shot", "--default"])
    assert back.exit_code == 0 and back.output.strip() == CLASSICAL
    bad = CliRunner().invoke(main, [*root, "segmenter", "shot", "nope"])
    assert bad.exit_code == 2 and bad.output.startswith("error:")
    # a value that makes no sense is refused at once, and the setting stays as it was
    off = CliRunner().invoke(
        main, [*root, "segmenter", "shot", "transnetv2", "--param", "threshold=1.5"]
    )
    assert off.exit_code == 2
    assert off.output.startswith("error: transnetv2: threshold must be a number in (0, 1)")
    assert CliRunner().invoke(main, [*root, "segmenter", "shot"]).output.strip() == CLASSICAL


def test_a_segmenter_that_does_not_make_the_type_is_an_error(learned):
    with pytest.raises(ResolveError, match="does not produce"):
        learned.query("SELECT id FROM shots USING shots_in_asset")
    with pytest.raises(ResolveError, match="no parameter 'bogus'"):
        learned.query("SELECT id FROM shots USING transnetv2(bogus=1)")
    with pytest.raises(ResolveError, match=r"transnetv2: min_frames must be an int >= 1"):
        learned.query("SELECT id FROM shots USING transnetv2(min_frames=0)")
    assert learned.failures().height == 0  # refused while planning: nothing ran
    with pytest.raises(ResolveError):
        learned.set_segmenter("frame", "transnetv2")
    with pytest.raises(AqlError, match="MATCH searches the store's segmentation"):
        learned.query("MATCH shots USING transnetv2 BY color TOP 3")


def test_the_transnet_weights_are_part_of_its_identity(learned):
    from amberlite.library.transnet import TRANSNET

    decl = learned.catalog.query("SELECT declaration FROM features WHERE name = 'transnetv2'")[0][0]
    assert TRANSNET.sha256() in decl and Path(TRANSNET.file).stat().st_size > 20_000_000

"""Match cutting on generated films with known answers: designed pairs rank first for each
match type, duplicates and adjacent shots never pair, every stage is memoized, the pair
scorer agrees with a numpy reference, the CLI writes its report, a learned TorchScript model
plugs in as a feature."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import amberlite
from amberlite.errors import AmberliteError, ResolveError
from amberlite.matchcut import (
    PAIR_COLUMNS,
    computed_by_feature,
    match_cut,
    prepare,
    scored_pairs,
    top_pairs,
)
from amberlite.media.synth import Scene, corrupt_copy, film_scenes, render
from amberlite.search.kernel import adjacent_pairs, exact_pairs, exact_pairs_numpy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
W, H, FRAMES = 160, 90, 24


def hard_cut_film(path: Path, seed: int) -> tuple[Path, dict[str, set[tuple[int, int]]]]:
    """The sample film's scenes, shortened, hard cuts only, no flashes, at 160x90 (pans scaled
    to the width); returns the path and the designed pairs by match type."""
    scenes, matches = film_scenes(seed)
    short = [
        dataclasses.replace(
            s,
            frames=FRAMES,
            transition_in="cut",
            transition_frames=0,
            flashes=(),
            pan=(s.pan[0] * W / 640, s.pan[1] * W / 640),
        )
        for s in scenes
    ]
    render(path, short, width=W, height=H, seed=seed)
    designed: dict[str, set[tuple[int, int]]] = {"color": set(), "framing": set(), "motion": set()}
    for a, b, kind in matches:
        designed["color" if kind == "colour" else kind].add((a, b))
    return path, designed


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("films")
    one, designed = hard_cut_film(d / "one.mp4", seed=0)
    two, _ = hard_cut_film(d / "two.mp4", seed=1)
    corrupt_copy(one, d / "broken.mp4")
    return {"one": one, "two": two, "broken": d / "broken.mp4", "designed": designed}


@pytest.fixture(scope="module")
def film_store(films, tmp_path_factory: pytest.TempPathFactory):
    store = amberlite.open(tmp_path_factory.mktemp("store"))
    report = store.ingest([films["one"], films["two"]], aliases=["one", "two"])
    assert not report.failures
    return store


def test_shots_are_the_scenes(film_store) -> None:
    shots = film_store.entities("shot", ["one"])
    assert shots["start_frame"].to_list() == [FRAMES * i for i in range(8)]


@pytest.mark.parametrize("match_type", ["color", "framing", "motion"])
def test_designed_pairs_rank_first(film_store, films, match_type: str) -> None:
    designed = films["designed"][match_type]
    pairs = top_pairs(film_store, ["one"], match_type, top=len(designed)).table
    assert pairs.columns == PAIR_COLUMNS
    got = {(a, b) for a, b in zip(pairs["shot_a"], pairs["shot_b"])}
    assert got == designed, pairs
    assert (pairs["score"].to_numpy() > 0.5).all()
    assert pairs["score"].is_sorted(descending=True)


def test_the_same_footage_in_two_films_never_pairs(film_store) -> None:
    # the films share their edit (only low-contrast textures differ): scene i of one film is a
    # near-duplicate of scene i of the other, dropped across assets like a repeat within one
    emb = film_store.get("shot_embedding", ["one", "two"]).join(
        film_store.entities("shot", ["one", "two"]), on=["id", "ref", "asset", "asset_id"]
    )
    x = {
        (a, i): np.asarray(v) for a, i, v in zip(emb["asset"], emb["index"], emb["shot_embedding"])
    }
    copies = {i for i in range(8) if max(x["one", j] @ x["two", i] for j in range(8)) >= 0.95}
    assert len(copies) >= 6  # the premise: most scenes are copies
    pairs = top_pairs(film_store, ["one", "two"], "framing", top=8, across_only=True).table
    assert pairs.height > 0 and (pairs["asset_a"] != pairs["asset_b"]).all()
    in_two = [
        b if ab == "two" else a
        for a, b, ab in zip(pairs["shot_a"], pairs["shot_b"], pairs["asset_b"])
    ]
    assert not set(in_two) & copies  # a copy pairs with nothing


def test_adjacent_shots_never_pair(film_store) -> None:
    prepare(film_store, ["one"], "color")
    pairs = scored_pairs(film_store, ["one"], "color", top=1000).table
    n = 8
    assert pairs.height == n * (n - 1) // 2 - (n - 1)  # every pair but the 7 adjacent ones
    assert ((pairs["shot_b"] - pairs["shot_a"]).abs() > 1).all()
    assert pairs.select("id_a", "id_b").is_duplicated().sum() == 0


def test_dedup_drops_an_exact_repeat(tmp_path: Path) -> None:
    a = Scene(FRAMES, (20, 30, 90), "disc", (240, 240, 240), (0.5, 0.5), 0.2, seed=1)
    b = Scene(FRAMES, (205, 120, 40), "rect", (30, 30, 200), (0.3, 0.6), 0.15, seed=2)
    c = Scene(FRAMES, (40, 140, 60), "disc", (250, 230, 60), (0.7, 0.4), 0.15, seed=3)
    d = Scene(FRAMES, (20, 40, 100), "disc", (230, 200, 40), (0.5, 0.5), 0.2, seed=4)
    render(tmp_path / "rep.mp4", [a, b, a, c, d], width=W, height=H)
    store = amberlite.open(tmp_path / "store")
    store.ingest([tmp_path / "rep.mp4"], aliases=["rep"])
    shots = store.entities("shot", "rep").join(
        store.get("dedup", "rep"), on=["id", "ref", "asset", "asset_id"]
    )
    assert shots.sort("index")["dedup"].to_list() == [True, True, False, True, True]
    assert scored_pairs(store, "rep", "color", top=100).table.height == 0  # nothing stored yet
    prepare(store, "rep", "color")
    pairs = scored_pairs(store, "rep", "color", top=100).table
    assert 2 not in pairs["shot_a"].to_list() + pairs["shot_b"].to_list()
    # kept shots 0, 1, 3, 4; 0-1 and 3-4 are adjacent
    got = {(a, b) for a, b in zip(pairs["shot_a"], pairs["shot_b"])}
    assert got == {(0, 3), (0, 4), (1, 3), (1, 4)}


def test_every_stage_is_memoized(films, tmp_path: Path) -> None:
    store = amberlite.open(tmp_path / "store")
    store.ingest([films["one"]], aliases=["one"])
    shots = store.registry.producer_of("shot").key  # the shots segmenter, whatever version
    first = computed_by_feature(prepare(store, ["one"], "color"))
    assert first == {shots: 1, "shot_embedding@1": 8, "dedup@1": 8, "match_color@1": 8}
    second = computed_by_feature(prepare(store, ["one"], "framing"))
    assert second["match_framing@3"] == 8
    assert sum(v for k, v in second.items() if k != "match_framing@3") == 0
    again = computed_by_feature(prepare(store, ["one"], "color"))
    assert sum(again.values()) == 0
    store.ingest([films["two"]], aliases=["two"])
    both = computed_by_feature(prepare(store, ["one", "two"], "color"))
    assert both == {shots: 1, "shot_embedding@1": 8, "dedup@1": 8, "match_color@1": 8}


def test_bad_requests_are_clear_errors(film_store) -> None:
    with pytest.raises(ResolveError, match="did you mean 'color'"):
        top_pairs(film_store, ["one"], "colour")
    with pytest.raises(ResolveError, match="unknown asset"):
        top_pairs(film_store, ["nope"], "color")
    with pytest.raises(AmberliteError, match="positive integer"):
        scored_pairs(film_store, ["one"], "color", top=0)
    with pytest.raises(AmberliteError, match="cannot be a match type"):
        top_pairs(film_store, ["one"], "dedup")


@pytest.mark.parametrize("metric", ["cosine", "iou"])
@pytest.mark.parametrize("across_only", [False, True])
def test_pair_scorer_matches_numpy_reference(metric: str, across_only: bool) -> None:
    rng = np.random.default_rng(7)
    n = 300
    if metric == "cosine":
        x = rng.normal(size=(n, 24)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    else:
        x = (rng.random((n, 40)) < 0.3).astype(np.float32)
        x[:3] = 0  # empty masks score 0, never NaN
    groups = np.repeat(np.arange(6), 50)
    order = np.tile(np.arange(50), 6)
    space = "ip" if metric == "cosine" else metric  # unit rows: cosine is the dot product
    kw = dict(groups=groups, across=across_only, space=space, exclude=adjacent_pairs(groups, order))
    gi, gj, gs = exact_pairs(x, 25, block_elems=64 * n, **kw)  # several row blocks
    ri, rj, rs = exact_pairs_numpy(x, 25, **kw)
    np.testing.assert_allclose(gs, rs, rtol=1e-5, atol=1e-6)
    if metric == "cosine":  # continuous scores: no ties, the same pairs
        assert list(zip(gi, gj)) == list(zip(ri, rj))
    assert len(gi) == 25 and (gi < gj).all()
    same = groups[gi] == groups[gj]
    assert not (same & (np.abs(order[gi] - order[gj]) == 1)).any()
    if across_only:
        assert not same.any()


def test_cli_matchcut_writes_report_and_fails_the_corrupt_file_alone(films, tmp_path) -> None:
    from amberlite.cli import main
    from amberlite.cli.matchcut import matchcut

    if "matchcut" not in main.commands:
        main.add_command(matchcut)
    out = tmp_path / "out"
    args = ["--store", str(tmp_path / "s"), "matchcut", str(films["one"]), str(films["two"])]
    args += [str(films["broken"]), "--type", "framing", "--top", "5", "--report", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "broken.mp4" in result.output and "failed" in result.output
    assert result.output.count("| one/") + result.output.count("| two/") == 10
    page = (out / "report.html").read_text()
    assert page.count("<img") == 10 and "frames/001_a.jpg" in page
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 600 and sheet.height > 5 * 180
    store = amberlite.open(tmp_path / "s")
    assert [Path(p).name for p, _ in store.status()["ingest_failures"]] == ["broken.mp4"]
    bad = CliRunner().invoke(main, ["--store", str(tmp_path / "s"), "matchcut", "--type", "x"])
    assert bad.exit_code == 2 and "unknown match type" in bad.output


def test_match_cut_report_frames_are_the_cut(film_store, tmp_path: Path) -> None:
    pairs = match_cut(film_store, ["one"], "framing", top=2, report_dir=tmp_path / "r")
    assert pairs.height == 2
    jpgs = sorted(p.name for p in (tmp_path / "r" / "frames").iterdir())
    assert jpgs == ["001_a.jpg", "001_b.jpg", "002_a.jpg", "002_b.jpg"]


def _tiny_model(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 32),
    ).eval()
    torch.jit.script(net).save(str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_learned_model_feature(films, tmp_path: Path) -> None:
    defs = tmp_path / "learned.py"  # the example, with its model file next to it
    shutil.copy(EXAMPLES / "matchcut" / "learned.py", defs)
    _tiny_model(tmp_path / "shot_model.pt")
    values = []
    for k in range(2):
        store = amberlite.open(tmp_path / f"store{k}")
        store.ingest([films["one"]], aliases=["one"])
        store.apply(defs)
        stats = store.materialize("learned_embedding")
        assert stats.computed == 8 and stats.failed == 0
        got = store.get("learned_embedding").sort("id")
        x = np.stack(got["learned_embedding"].to_list())
        assert x.shape == (8, 32)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
        values.append(x)
    np.testing.assert_array_equal(values[0], values[1])  # deterministic

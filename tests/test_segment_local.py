"""The classical ``shots`` segmenter does not cut on local change inside a shot.

Each class of generated clip holds local changes that a frame-difference detector takes for
cuts (checked: with ``spread=0`` the same clip gets false cuts), between real cuts and a
dissolve that must still be found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import amberlite
from amberlite.errors import ResolveError
from amberlite.library import segment
from amberlite.media.frame_index import frame_index
from amberlite.media.synth import SynthTruth, local_change_scene, render

W, H = 160, 90  # the segmenter works on 64x36 thumbnails whatever the size
DEFAULTS = dict(segment.shots.params)
SEEDS = {"objects": (3, 8), "captions": (1, 2), "whip_pans": (5, 6), "sweeps": (3, 6)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per class: two 100-frame scenes of its local changes joined by a hard cut, with
    the truth and the segmenter's features."""
    root = tmp_path_factory.mktemp("local")
    out = {}
    for kind, seeds in SEEDS.items():
        path = root / f"{kind}.mp4"
        truth = render(path, [local_change_scene(kind, 100, s, width=W) for s in seeds], W, H)
        out[kind] = (truth, segment.features(str(path), frame_index(path), fps=25))
    return out


def _false_cuts(cuts: list[int], truth: SynthTruth) -> list[int]:
    """Cuts more than a frame from every true cut and outside every transition."""
    return [
        c
        for c in cuts
        if all(abs(c - t) > 1 for t in truth.cuts)
        and not any(s - 1 <= c <= e for s, e, _ in truth.transitions)
    ]


def _check_class(clips: dict, kind: str) -> None:
    truth, f = clips[kind]
    assert len(truth.local_changes) >= 2, truth.local_changes
    assert segment.detect(f, **DEFAULTS) == list(truth.cuts)
    naive = segment.detect(f, **{**DEFAULTS, "spread": 0.0})
    assert _false_cuts(naive, truth), "the clip no longer provokes false cuts"


def test_big_objects_popping_in_out_or_teleporting_are_no_cuts(clips: dict) -> None:
    _check_class(clips, "objects")


def test_captions_appearing_or_fading_in_are_no_cuts(clips: dict) -> None:
    _check_class(clips, "captions")


def test_whip_pans_with_motion_blur_are_no_cuts(clips: dict) -> None:
    _check_class(clips, "whip_pans")


def test_hands_and_objects_sweeping_through_are_no_cuts(clips: dict) -> None:
    _check_class(clips, "sweeps")


def _descriptor(seed: int, pan: int = 0) -> np.ndarray:
    """A smooth random 64x36 picture as a segmenter descriptor (Y, then U and V at half
    size), its content moved ``pan`` pixels to the right."""
    coarse = np.random.default_rng(seed).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    img = np.roll(cv2.resize(coarse, segment.THUMB, interpolation=cv2.INTER_CUBIC), pan, 1)
    y, u, v = (img[..., k] for k in range(3))
    return np.concatenate([y.ravel(), u[::2, ::2].ravel(), v[::2, ::2].ravel()])


def test_motion_spread_sees_through_a_pan_but_not_a_cut() -> None:
    a = _descriptor(1)
    assert segment.motion_spread(a, a) == 0.0
    assert segment.motion_spread(a, _descriptor(1, pan=6)) < 0.1
    assert segment.motion_spread(a, _descriptor(2)) > 0.8


def test_real_cuts_and_dissolves_between_local_changes_are_found(tmp_path: Path) -> None:
    kinds = ("objects", "captions", "whip_pans", "sweeps", "objects")
    scenes = [
        local_change_scene(
            kind,
            90,
            20 + i,
            width=W,
            transition_in="dissolve" if i == 2 else "cut",
            transition_frames=16 if i == 2 else 0,
        )
        for i, kind in enumerate(kinds)
    ]
    path = tmp_path / "mixed.mp4"
    truth = render(path, scenes, W, H)
    assert len(truth.local_changes) >= 6 and truth.transitions
    store = amberlite.open(tmp_path / "store")
    assert not store.ingest([path]).failures
    starts = store.entities("shot")["start_frame"].to_list()
    ((start, end, _),) = truth.transitions
    assert starts[0] == 0 and len(starts) == len(truth.cuts) + 2
    assert all(any(abs(s - c) <= 1 for s in starts) for c in truth.cuts)
    assert any(start <= s <= end for s in starts)
    assert _false_cuts(starts[1:], truth) == []
    with pytest.raises(ResolveError, match=r"shots: spread must be a number in \[0, 1\]"):
        store.materialize("shots", params={"spread": 1.5})

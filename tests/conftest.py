"""Shared fixtures: small generated media (nothing is downloaded) and fresh stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from amberlite.media.synth import Scene, corrupt_copy, render  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite the expected outputs (tests/plans/*/*.txt, grammar/corpus/valid.aql) from "
        "the current code instead of comparing with them; review the diff",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Test modules read AQL_UPDATE_GOLDENS (also accepted on its own, as an alias of the option).
    if config.getoption("--update-goldens"):
        os.environ["AQL_UPDATE_GOLDENS"] = "1"


def small_clip(path: Path, seed: int, scenes: int = 3, frames: int = 20) -> Path:
    """A 160x90 clip of ``scenes`` hard-cut scenes of distinct colours."""
    palette = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40), (120, 40, 160)]
    render(
        path,
        [
            Scene(
                frames=frames,
                background=palette[(i + seed) % len(palette)],
                position=(0.3 + 0.2 * i, 0.5),
                radius=0.25,
                seed=seed * 10 + i,
            )
            for i in range(scenes)
        ],
        width=160,
        height=90,
        seed=seed,
    )
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media")
    small_clip(d / "clip_a.mp4", seed=0)
    small_clip(d / "clip_b.mp4", seed=1, scenes=2)
    corrupt_copy(d / "clip_a.mp4", d / "broken.mp4")
    (d / "notes.mp4").write_text("this is not a video")
    return d


@pytest.fixture
def store(tmp_path: Path):
    import amberlite

    return amberlite.open(tmp_path / "store")


@pytest.fixture
def defs(tmp_path: Path):
    """Write a definition file into tmp_path and return its path."""

    def write(source: str, name: str = "features.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    return write

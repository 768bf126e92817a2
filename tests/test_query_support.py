"""Shared helpers of the AQL query tests: definitions and small stores (no tests here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import amberlite

DEFS = '''
import pyarrow as pa
from amberlite import Decode, feature

SMALL = Decode(size=(32, 18))


@feature(entity="shot", output=pa.float32(), decode=SMALL)
def brightness(shot):
    """Mean pixel value of the shot (0-1)."""
    return float(shot.frames().mean() / 255.0)


@feature(entity="asset", output=pa.list_(pa.float32(), 3), decode=Decode(size=(32, 18), fps=5))
def color(asset):
    """Mean RGB of the asset (0-1)."""
    return asset.frames().reshape(-1, 3).mean(axis=0) / 255.0


@feature(entity="shot", output=pa.float64(), params={"scale": 1.0})
def scaled(shot, scale=1.0):
    """start_frame * scale; fails on the second shot of every asset."""
    if shot.index == 1:
        raise ValueError("boom")
    return shot.start_frame * scale


@feature(entity="frame", output=pa.int64())
def parity(frame):
    """n % 2, without decoding."""
    return frame.n % 2
'''


def make_store(root: Path, media_dir: Path) -> amberlite.Store:
    """A store with clip_a as film1 and clip_b as film2 and DEFS applied; nothing computed."""
    store = amberlite.open(root / "store")
    store.ingest(
        [media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"],
        aliases=["film1", "film2"],
        progress=False,
    )
    defs = root / "query_defs.py"
    defs.write_text(DEFS)
    store.apply(defs)
    return store


def copy_store(store: amberlite.Store, dest: Path) -> amberlite.Store:
    """An independent copy of a store's folder, opened."""
    shutil.copytree(store.root, dest)
    return amberlite.open(dest)


def spawn_repl(store_root, env: dict[str, str]):
    """The interactive REPL on a pseudo-terminal (pexpect), as a person starts it."""
    import sys

    import pexpect

    return pexpect.spawn(
        sys.executable,
        ["-m", "amberlite.cli", "--store", str(store_root), "repl"],
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
        env={**env, "TERM": "dumb"},
    )

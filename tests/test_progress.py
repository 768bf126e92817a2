"""Progress when stderr is not a terminal: plain lines (no tqdm control characters), at most
one every 2 s; an asset-level feature counts frames, not whole videos."""

from __future__ import annotations

import re
import subprocess
import sys

from test_interrupts import SLOW, env
from test_query_support import make_store

SLOW_ASSET = (
    SLOW
    + '''

@feature(entity="asset", output=pa.int64(), parallel="serial")
def slow_asset(asset):
    """The asset's frame count, slowly (2.5 s an asset)."""
    import time

    time.sleep(2.5)
    return asset.record.frame_count


@feature(entity="asset", output=pa.int64(), parallel="serial")
def slow_decode(asset):
    """Frames decoded, slowly (0.08 s a frame)."""
    import time

    from amberlite.media.decode import read_frames

    n = 0
    for _ in read_frames(asset.path, decode=asset.decode, index=asset.index):
        time.sleep(0.08)
        n += 1
    return n
'''
)


def materialize(tmp_path, media_dir, *args):
    store = make_store(tmp_path, media_dir)
    defs = tmp_path / "slow_defs.py"
    defs.write_text(SLOW_ASSET)
    store.apply(defs)
    return subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store.root), "materialize", *args],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=120,
    )


def test_piped_materialize_prints_plain_progress_lines(tmp_path, media_dir):
    r = materialize(tmp_path, media_dir, "slow", "--asset", "film1")
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^slow@1: (\d+)/(\d+) entities, \d+ s$", r.stderr, re.M)
    assert lines, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    assert lines[-1][0] == lines[-1][1]  # the last line says it is done


def test_asset_level_progress_counts_frames(tmp_path, media_dir):
    r = materialize(tmp_path, media_dir, "slow_asset")
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^slow_asset@1: (\d+)/(\d+) frames, \d+ s$", r.stderr, re.M)
    assert lines, r.stderr
    assert int(lines[-1][1]) > 2  # frames of two assets, not "2"
    assert lines[-1][0] == lines[-1][1]


def test_progress_moves_inside_one_video(tmp_path, media_dir):
    """Frames count as they are decoded, not when the asset's value commits."""
    r = materialize(tmp_path, media_dir, "slow_decode", "--asset", "film1")
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^slow_decode@1: (\d+)/(\d+) frames, \d+ s$", r.stderr, re.M)
    assert len(lines) >= 2, r.stderr
    total = int(lines[-1][1])
    assert 0 < int(lines[0][0]) < total  # part of the one video, before it committed
    assert [int(n) for n, _ in lines] == sorted(int(n) for n, _ in lines)
    assert lines[-1][0] == lines[-1][1]

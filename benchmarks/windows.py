"""Shared set-up of the store benchmarks: a generated clip with N "window" spans over it.

``window_store(root, clip, n, features)`` opens a store under ``root``, ingests ``clip`` and
applies a definition file holding the ``windows`` segmenter (the first ``n`` spans of the
clip by length, then start: as many entities as a benchmark wants from one short clip) plus
the benchmark's own ``features`` source over ``window`` entities.
"""

from __future__ import annotations

from pathlib import Path

import amberlite
from amberlite.media.synth import Scene, render

HEADER = """
import numpy as np
import pyarrow as pa
from amberlite import feature, segmenter
"""

WINDOWS = '''
@segmenter(produces="window", params={{"n": {n}, "disjoint": False}})
def windows(asset, n={n}, disjoint=False):
    """The first n spans (start, start + length) by length, then start."""
    frames = asset.record.frame_count
    out = []
    length = 1
    while len(out) < n:
        out.extend((s, s + length) for s in range(0, frames - length + 1))
        length += 1
    return sorted(out[:n])
'''


def render_clip(path: Path, frames: int, width: int = 32, height: int = 18, **scene) -> Path:
    """A one-scene grey clip of ``frames`` frames (``scene``: more Scene fields)."""
    render(path, [Scene(frames=frames, background=(90, 90, 90), **scene)], width, height)
    return path


def window_store(
    root: Path, clip: Path, n: int, features: str, name: str = "store"
) -> amberlite.Store:
    """A store at ``root/name`` with ``clip`` ingested and ``windows`` + ``features`` applied."""
    store = amberlite.open(root / name)
    store.ingest([clip], progress=False)
    defs = root / f"{name}_defs.py"
    defs.write_text(HEADER + WINDOWS.format(n=n) + features)
    store.apply(defs)
    return store

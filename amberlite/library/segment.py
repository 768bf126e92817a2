"""Shot segmentation: the ``shots`` segmenter that produces the ``shot`` entities.

This first version detects hard cuts from the mean absolute difference of downscaled luma
between consecutive frames, against a threshold relative to the recent median; a flash (a
spike that returns to the previous picture) is not a cut.
"""

from __future__ import annotations

import numpy as np

from amberlite.define.decorators import segmenter


@segmenter(produces="shot", version=1, params={"threshold": 3.0, "min_frames": 6})
def shots(asset, threshold: float = 3.0, min_frames: int = 6):
    """Hard cuts from luma differences; spans of at least ``min_frames`` frames."""
    numbers, luma = asset.luma()
    n = asset.record.frame_count
    if len(luma) < 2:
        return [(0, n)]
    y = luma.astype(np.float32)
    diff = np.abs(y[1:] - y[:-1]).mean(axis=(1, 2))
    # A flash: frame i differs from both neighbours but i-1 and i+1 look alike.
    skip = np.abs(y[2:] - y[:-2]).mean(axis=(1, 2)) if len(y) > 2 else np.zeros(0)
    cuts = [0]
    for i, d in enumerate(diff):
        lo = max(0, i - 12)
        base = np.median(diff[lo:i]) if i > lo else 0.0
        score = d / (base + 1.0)
        frame = int(numbers[i + 1])
        is_flash = i < len(skip) and skip[i] < 0.3 * d
        if score > threshold and d > 8.0 and not is_flash and frame - cuts[-1] >= min_frames:
            cuts.append(frame)
    bounds = cuts + [n]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

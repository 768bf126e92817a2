"""A first definition file: colour and brightness features over assets and shots.

amberlite --store S apply examples/basic/features.py
amberlite --store S materialize mean_color
"""

import numpy as np
import pyarrow as pa

from amberlite import Decode, feature

SMALL = Decode(size=(64, 36), fps=2)  # decode settings are part of each feature's identity


@feature(entity="asset", version=1, output=pa.list_(pa.float32(), 3), decode=SMALL)
def mean_color(asset):
    """Mean RGB of the asset (0-1), sampled at 2 frames per second."""
    return asset.frames().reshape(-1, 3).mean(axis=0) / 255.0


@feature(entity="shot", version=1, output=pa.list_(pa.float32(), 3), decode=Decode(size=(64, 36)))
def shot_color(shot):
    """Mean RGB of a shot (0-1)."""
    return shot.frames().reshape(-1, 3).mean(axis=0) / 255.0


@feature(entity="shot", version=1, output=pa.float32(), inputs=["shot_color"])
def shot_brightness(shot, shot_color):
    """Rec. 709 luma of the shot's mean colour."""
    return float(np.dot(shot_color, [0.2126, 0.7152, 0.0722]))

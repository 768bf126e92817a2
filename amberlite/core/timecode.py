"""Times as a person reads them.

Example:
    >>> timecode(75.5), timecode(3723.25)
    ('01:15.500', '1:02:03.250')
"""

from __future__ import annotations


def timecode(seconds: float) -> str:
    """``MM:SS.mmm``, or ``H:MM:SS.mmm`` from an hour on."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return (f"{h}:" if h else "") + f"{m:02d}:{rest / 1000:06.3f}"


def smpte(seconds: float, fps: float) -> str:
    """SMPTE non-drop-frame timecode ``HH:MM:SS:FF`` at a whole frame rate (``fps`` rounded:
    29.97 counts 30 frames a second, as non-drop-frame timecode does).

    Example:
        >>> smpte(0, 25), smpte(61.5, 24), smpte(3600 + 1 / 30, 30)
        ('00:00:00:00', '00:01:01:12', '01:00:00:01')
    """
    rate = max(1, round(fps))
    frames = int(round(seconds * fps))
    ff = frames % rate
    total_s = frames // rate
    return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}:{ff:02d}"

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

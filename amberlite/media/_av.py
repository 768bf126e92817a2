"""Opening media with PyAV, with every failure turned into a :class:`MediaError`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import av

from amberlite.errors import MediaError

PathLike = str | os.PathLike[str]

# FFmpeg/PyAV failures that mean "this file cannot be read" (PyAV's error classes do not all
# derive from OSError, and some that do are also FFmpegError).
_AV_ERRORS = (av.FFmpegError, OSError, EOFError)


@contextlib.contextmanager
def media_errors(path: PathLike, what: str) -> Iterator[None]:
    """Turn PyAV/OS errors raised inside the block into ``MediaError(path, f"{what}: ...")``."""
    try:
        yield
    except MediaError:
        raise
    except _AV_ERRORS as exc:
        raise MediaError(path, f"{what}: {describe_av_error(exc)}") from exc


def describe_av_error(exc: BaseException) -> str:
    """A short description of an FFmpeg/OS error without repeating the file name."""
    if isinstance(exc, av.FFmpegError) and getattr(exc, "strerror", None):
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def check_file(path: PathLike) -> str:
    """Return ``path`` as a string; raise :class:`MediaError` if it is not a readable file."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise MediaError(p, "file not found")
    if not os.path.isfile(p):
        raise MediaError(p, "not a regular file")
    if os.path.getsize(p) == 0:
        raise MediaError(p, "empty file")
    return p


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def open_video(
    path: PathLike, threads: bool = False
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open ``path`` and yield ``(container, first video stream)``; close on exit.

    Contract: raises :class:`MediaError` naming the file if it is missing, not media
    (unrecognised or corrupt container, e.g. truncated MP4 without its index) or has no
    video stream. ``threads=True`` enables FFmpeg's automatic frame/slice threading;
    ``False`` decodes on one thread (the least CPU per frame: for callers that decode several
    ranges concurrently, one per core). PyAV's own default, slice threads on every core, would
    oversubscribe them on files with several slices per frame (libx264 through libavcodec
    with slice threading writes such files).
    """
    p = check_file(path)
    with media_errors(p, "not a readable media file"):
        container = av.open(p, "r")
    try:
        if not container.streams.video:
            raise MediaError(p, "no video stream")
        stream = container.streams.video[0]
        if threads:
            stream.codec_context.thread_type = "AUTO"
            stream.codec_context.thread_count = 0
        else:
            stream.codec_context.thread_type = "NONE"
            stream.codec_context.thread_count = 1
        yield container, stream
    finally:
        container.close()

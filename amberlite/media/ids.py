"""Content identity of media files: a digest of the bytes, independent of the file's name."""

from __future__ import annotations

import hashlib
import os

from amberlite.errors import MediaError

_CHUNK = 1 << 20  # 1 MiB


def content_id(path: str | os.PathLike[str]) -> str:
    """Return the blake2b (16-byte digest) hex of the file's bytes, streamed in 1 MiB chunks.

    Contract: two files with identical bytes have the same id wherever they live and whatever
    they are called (renaming or moving keeps the id); any changed byte changes it.
    Raises :class:`MediaError` if the file cannot be read.
    """
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise MediaError(path, f"cannot read file ({exc.strerror or exc})") from exc
    return digest.hexdigest()

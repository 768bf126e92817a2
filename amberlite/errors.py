"""The errors amberlite users see.

Every error that bad input can cause is an :class:`AmberliteError`; the CLI prints its message
(never a Python traceback) and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AmberliteError(Exception):
    """Base class of every error caused by input (media, definitions, queries, store state)."""


class MediaError(AmberliteError):
    """A media file could not be read: missing, truncated, not media, or without video."""

    def __init__(self, path: object, reason: str, frame: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.frame = frame  # the first frame that could not be decoded, when known
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keeps ``frame`` across process boundaries (fork pool, Ray)
        return (type(self), (self.path, self.reason, self.frame))


class DefinitionError(AmberliteError):
    """A feature definition file or declaration is invalid."""


class ChangeRefused(DefinitionError):
    """`apply` found code changed without a version bump (use ``force=True`` to accept)."""


class StoreError(AmberliteError):
    """The store is missing, locked for too long, or of an unsupported schema version."""


class StoreFull(StoreError):
    """The disk (or quota) under the store is full. What was committed before stays; the
    step that ran out of space wrote nothing visible: free space and run it again."""

    def __init__(self, where: object, detail: object = "") -> None:
        self.where = str(where)
        super().__init__(
            f"no space left on device under {self.where}"
            + (f" ({detail})" if detail else "")
            + ": what was committed before is kept; free space and run again"
        )


_OUT_OF_SPACE = ("No space left on device", "Disk quota exceeded")


def out_of_space(exc: BaseException) -> bool:
    """True for an error caused by a full disk or quota: an ``OSError`` (ENOSPC, EDQUOT), or
    a library's error (DuckDB's I/O and transaction errors) whose message says so."""
    import errno

    if isinstance(exc, StoreFull):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(s in str(exc) for s in _OUT_OF_SPACE)


class ResolveError(AmberliteError):
    """A name in a request does not resolve: unknown feature, entity type, asset or parameter."""

    def __init__(self, message: str, *, name: str | None = None, candidates: Iterable[str] = ()):
        self.name = name
        suggestion = ""
        if name is not None:
            close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
            if close:
                suggestion = f" (did you mean {close[0]!r}?)"
        super().__init__(message + suggestion)


class ReplicaError(AmberliteError):
    """A replica cannot be declared, opened or queried (bad options, unknown target...), or a
    value is not the fixed-size float vector a vector index or a similarity search needs."""


class AqlError(AmberliteError):
    """Base of errors raised while parsing, planning or running an AQL query."""


class AqlTypeError(AqlError):
    """An operand of an AQL expression has the wrong type."""


class AqlSyntaxError(AqlError):
    """A malformed query: names the line and column, shows a caret and what was expected."""

    def __init__(
        self,
        message: str,
        line: int,
        column: int,
        query_text: str = "",
        expected: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.query_text = query_text
        self.expected = tuple(expected)
        super().__init__(self._render())

    def _render(self) -> str:
        out = [f"line {self.line}, column {self.column}: {self.message}"]
        lines = self.query_text.splitlines()
        if 1 <= self.line <= len(lines):
            out.append("  " + lines[self.line - 1])
            out.append("  " + " " * max(self.column - 1, 0) + "^")
        if self.expected:
            out.append(" expected one of: " + ", ".join(self.expected))
        return "\n".join(out)

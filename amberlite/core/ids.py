"""The entity-id codec: the one place that knows how ids and readable references look.

Stable ids (content, never positions of a list that can change):

* asset: the content hash of the file (32 hex digits);
* span (shot, any declared span type): ``<asset_id>/<start_frame>-<end_frame>``;
* frame: ``<asset_id>/f<n>``.

Readable references (what AQL's ``ref`` column shows and every API accepts):

* asset: its alias;
* span: ``<alias>/<index>`` (``film1/12``: the shot with index 12 of ``film1``);
* frame: ``<alias>/f<n>``.

Example:
    >>> span_id("ab", 3, 9), frame_id("ab", 4), frame_number("ab/f4")
    ('ab/3-9', 'ab/f4', 4)
    >>> parse_ref("film1/12"), parse_ref("film1/f4"), parse_ref("film1/3-9")
    (('film1', 'index', 12), ('film1', 'frame', 4), ('film1', 'span', (3, 9)))
    >>> parse_ref("film1")
    ('film1', None, None)
"""

from __future__ import annotations

import re
from typing import Any

_SPAN = re.compile(r"(\d+)-(\d+)")
_FRAME = re.compile(r"f(\d+)")


def span_id(asset_id: str, start: int, end: int, tag: str = "") -> str:
    """``<asset_id>/<start>-<end>``, plus ``~<tag>`` for a span of a segmentation other than
    its type's default (``amberlite.define.info.Segmentation.tag``)."""
    return f"{asset_id}/{start}-{end}" + (f"~{tag}" if tag else "")


def frame_id(asset_id: str, n: int) -> str:
    return f"{asset_id}/f{n}"


def span_ref(alias: str, index: int) -> str:
    return f"{alias}/{index}"


def frame_ref(alias: str, n: int) -> str:
    return f"{alias}/f{n}"


def frame_number(entity_id: str) -> int:
    """``n`` of a frame id ``<asset_id>/f<n>``."""
    return int(entity_id.rsplit("/f", 1)[1])


def parse_ref(text: str) -> tuple[str, str | None, Any]:
    """``(asset, kind, value)`` of a reference: kind ``index`` (``film1/12``), ``frame``
    (``film1/f4``), ``span`` (``film1/3-9``, frames), ``other`` (a tail of another form), or
    None for a bare asset reference. ``asset`` is an alias or an asset id."""
    head, sep, tail = text.rpartition("/")
    if not sep:
        return text, None, None
    if tail.isdigit():
        return head, "index", int(tail)
    m = _FRAME.fullmatch(tail)
    if m:
        return head, "frame", int(m.group(1))
    m = _SPAN.fullmatch(tail)
    if m:
        return head, "span", (int(m.group(1)), int(m.group(2)))
    return head, "other", tail


# -- SQL expressions of the same codec (column names are the caller's, never user text) -------
def frame_id_sql(asset_col: str, n_col: str) -> str:
    return f"{asset_col} || '/f' || {n_col}"


def frame_ref_sql(alias_col: str, n_col: str) -> str:
    return f"{alias_col} || '/f' || {n_col}"


def span_ref_sql(alias_col: str, index_col: str) -> str:
    return f"{alias_col} || '/' || {index_col}"

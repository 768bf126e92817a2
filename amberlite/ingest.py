"""Ingest: media files become assets (identity is a content hash), one file failing alone.

Re-ingesting a moved or renamed file updates its path and keeps its id, alias and values.
Features marked ``on_ingest`` are computed for new assets (:func:`compute_on_ingest`, also
used by the folder watcher).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from amberlite.context import StoreContext
from amberlite.core.entities import AssetRecord, cached_frame_index
from amberlite.errors import AmberliteError, MediaError, StoreFull
from amberlite.media.ids import content_id
from amberlite.media.probe import probe
from amberlite.memo.store import now
from amberlite.run.resolve import RunStats


@dataclass
class IngestReport:
    assets: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Files not ingested because the disk under the store is full: not the file's fault, so
    # not recorded as ingest failures (and the catalog could not take the record anyway).
    no_space: list[tuple[str, str]] = field(default_factory=list)
    store_full: str | None = None  # the disk-full message, when the disk filled up


def ingest(
    ctx: StoreContext,
    paths: Iterable[str | os.PathLike[str]],
    aliases: Sequence[str] | None = None,
    progress: bool | None = None,
    compute: bool = True,
) -> IngestReport:
    """Add media files. A file that cannot be read fails alone, with its reason recorded.

    The asset id is a content hash: re-ingesting a moved or renamed file updates its path
    and keeps its id, alias and values. Features marked ``on_ingest`` are computed for
    new assets when ``compute`` is true.
    """
    paths = [Path(p) for p in paths]
    _check_aliases(ctx, paths, aliases)
    report = IngestReport()
    new_ids = []
    for i, path in enumerate(
        tqdm(
            paths,
            desc="ingest",
            unit="file",
            disable=(not progress) if progress is not None else None,
            leave=False,
        )
    ):
        alias = aliases[i] if aliases else None
        try:
            row, is_new = _ingest_one(ctx, path, alias)
        except StoreFull as e:
            report.no_space.append((str(path), str(e)))
            report.store_full = str(e)
            continue  # the batch goes on: space may come back (another process frees it)
        except MediaError as e:
            report.failures.append((str(path), e.reason))
            try:
                with ctx.catalog.write() as con:
                    con.execute(
                        """INSERT INTO ingest_failures VALUES (?, ?, ?) ON CONFLICT DO UPDATE
                           SET error = excluded.error, failed_at = excluded.failed_at""",
                        [str(path.absolute()), e.reason, now()],
                    )
            except StoreFull as full:  # reported all the same, just not recorded
                report.store_full = str(full)
            continue
        report.assets.append(row)
        if is_new:
            new_ids.append(row["asset_id"])
    if compute and new_ids:
        compute_on_ingest(ctx, new_ids, "ingest", None, progress)
    return report


def compute_on_ingest(
    ctx: StoreContext,
    asset_ids: Sequence[str],
    trigger: str,
    executor: Any = None,
    progress: bool | None = None,
) -> list[RunStats]:
    """Compute the newest version of every ``on_ingest`` feature over new assets."""
    runs = []
    for spec in ctx.registry.all():
        if spec.on_ingest and spec.version == ctx.registry.versions(spec.name)[-1]:
            runs.append(
                ctx.resolver.materialize(
                    spec,
                    None,
                    list(asset_ids),
                    executor=executor,
                    trigger=trigger,
                    progress=progress,
                )
            )
    return runs


_ID = re.compile(r"[0-9a-fA-F]{32}")


def _check_aliases(ctx: StoreContext, paths: list[Path], aliases: Sequence[str] | None) -> None:
    """Refuse, before ingesting anything, aliases that do not pair with the files one to one
    or that could be read as an asset id (aliases and ids name assets in the same places:
    ``OF``, ``NEAREST``, ``--asset``)."""
    if not aliases:
        return
    if len(aliases) != len(paths):
        raise AmberliteError(
            f"{len(aliases)} alias(es) for {len(paths)} file(s): give one alias per file, "
            "in order, or none"
        )
    for alias in aliases:
        if _ID.fullmatch(alias):
            raise AmberliteError(
                f"alias {alias!r} looks like an asset id (32 hex digits): aliases and ids "
                "name assets in the same places, choose another alias"
            )
    with ctx.catalog.read() as con:
        taken = con.execute(
            "SELECT asset_id FROM assets WHERE asset_id IN (SELECT unnest(?))", [list(aliases)]
        ).fetchall()
    if taken:
        raise AmberliteError(f"alias {taken[0][0]!r} is the id of another asset")


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be ingested as a file."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if e.errno == errno.ENOENT:
            return "no such file"
        return e.strerror or str(e)
    if stat.S_ISDIR(st.st_mode):
        return (
            "is a directory (to ingest the media in a folder, use `amberlite watch FOLDER --once`)"
        )
    return "not a regular file"


def _ingest_one(ctx: StoreContext, path: Path, alias: str | None) -> tuple[dict[str, Any], bool]:
    if not path.is_file():
        raise MediaError(path, _not_a_file(path))
    asset_id = content_id(path)
    info = probe(path)
    record = AssetRecord(
        asset_id,
        alias or _default_alias(path),
        str(path.absolute()),
        info.width,
        info.height,
        info.frame_rate,
        info.duration_s,
        info.frame_count,
        info.variable_frame_rate,
    )
    index = cached_frame_index(ctx.media_cache, record)  # exact frame count from packets
    with ctx.catalog.write() as con:
        existing = con.execute("SELECT alias FROM assets WHERE asset_id = ?", [asset_id]).fetchone()
        if existing:
            con.execute("UPDATE assets SET path = ? WHERE asset_id = ?", [record.path, asset_id])
            con.execute("DELETE FROM ingest_failures WHERE path = ?", [record.path])
            return _asset_row(con, asset_id), False
        name = _free_alias(con, alias or _default_alias(path))
        con.execute(
            "INSERT INTO assets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                asset_id,
                name,
                record.path,
                path.stat().st_size,
                info.container,
                info.codec,
                info.width,
                info.height,
                info.frame_rate.numerator,
                info.frame_rate.denominator,
                info.duration_s,
                len(index),
                info.variable_frame_rate,
                now(),
            ],
        )
        con.execute("DELETE FROM ingest_failures WHERE path = ?", [record.path])
        return _asset_row(con, asset_id), True


def _default_alias(path: Path) -> str:
    """The file's stem, unless it could be read as an asset id (a file named after another
    asset's id would take over that id in ``OF`` and NEAREST): then ``asset-<stem>``."""
    return f"asset-{path.stem}" if _ID.fullmatch(path.stem) else path.stem


def _free_alias(con, alias: str) -> str:
    taken = {
        r[0]
        for r in con.execute(
            "SELECT alias FROM assets WHERE alias = ? OR alias LIKE ?", [alias, alias + "-%"]
        ).fetchall()
    }
    if alias not in taken:
        return alias
    n = 2
    while f"{alias}-{n}" in taken:
        n += 1
    return f"{alias}-{n}"


def _asset_row(con, asset_id: str) -> dict[str, Any]:
    cur = con.execute("SELECT * FROM assets WHERE asset_id = ?", [asset_id])
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone()))

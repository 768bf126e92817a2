"""``amberlite matchcut``: ingest videos, compute what is missing, print the best match cuts.

Registered in :mod:`amberlite.cli` (``main.add_command(matchcut)``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from amberlite.cli.util import friendly, store_of, table

# The names of amberlite.matchcut.MATCH_TYPES, for --help without importing torch (the test of
# start-up checks that the two agree).
MATCH_TYPE_NAMES = ("color", "framing", "motion")
MIN_SHOT = 0.5  # = amberlite.search.match.MIN_SHOT (tests/test_matchcut_real.py checks)


def _assets(store, refs: tuple[str, ...]) -> list[str] | None:
    """Ingest the arguments that are files; others must be known aliases or asset ids.
    A file that cannot be read fails alone (reported, recorded in the store's status)."""
    if not refs:
        return None
    files = [r for r in refs if Path(r).is_file()]
    names = [r for r in refs if not Path(r).is_file()]
    ids = store.resolve_assets(names) if names else []
    if files:
        report = store.ingest(files)
        for path, reason in report.failures:
            click.secho(f"failed   {path}: {reason}  (recorded; the others go on)", fg="yellow")
        ids += [a["asset_id"] for a in report.assets]
    if not ids:
        click.secho("error: no readable video among the arguments", fg="red", err=True)
        sys.exit(2)
    return list(dict.fromkeys(ids))


@click.command("matchcut")
@click.argument("videos", nargs=-1, type=click.Path())
@click.option(
    "--type",
    "match_type",
    default="color",
    show_default=True,
    help=f"Match type: {', '.join(MATCH_TYPE_NAMES)} (or a shot feature that is a float vector).",
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--across-only", is_flag=True, help="Only pairs of shots from different videos.")
@click.option(
    "--min-shot",
    default=MIN_SHOT,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Shots shorter than this many seconds never pair.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write report.html and contact_sheet.png into this folder.",
)
@click.pass_context
@friendly
def matchcut(
    ctx: click.Context,
    videos: tuple[str, ...],
    match_type: str,
    top: int,
    across_only: bool,
    min_shot: float,
    report_dir: str | None,
) -> None:
    """Find the best match cuts between shots of VIDEOS (files, aliases or ids; none = every
    asset of the store) by colour, framing or motion."""
    from amberlite.matchcut import computed_by_feature, display_table, match_cut, prepare

    store = store_of(ctx, create=bool(videos))
    assets = _assets(store, videos)
    stats = prepare(store, assets, match_type)
    pairs = match_cut(store, assets, match_type, top, across_only, report_dir, min_shot=min_shot)
    work = ", ".join(f"{k} {v}" for k, v in computed_by_feature(stats).items() if v)
    click.echo(f"computed: {work or 'nothing (every value was stored)'}")
    if pairs.height == 0:
        click.echo("no pairs (fewer than two shots that may pair)")
    else:
        click.echo(table(display_table(pairs), rows=100))
    if report_dir is not None:
        out = Path(report_dir)
        click.echo(f"report: {out / 'report.html'}\ncontact sheet: {out / 'contact_sheet.png'}")

"""``make demo``: the main job end to end on films the project generates itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from amberlite.cli.util import table
from amberlite.matchcut import (
    MATCH_TYPES,
    computed_by_feature,
    display_table,
    match_cut,
    prepare,
    top_pairs,
)
from amberlite.media.synth import corrupt_copy, sample_film
from amberlite.store import open as open_store


def make_media(folder: Path, films: int = 3) -> list[Path]:
    """Render sample films (cached) plus one truncated file that must fail alone."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(films):
        path = folder / f"film{seed + 1}.mp4"
        if not path.exists():
            sample_film(path.with_suffix(".tmp.mp4"), seed=seed)
            path.with_suffix(".tmp.mp4").replace(path)
        paths.append(path)
    broken = folder / "broken.mp4"
    if not broken.exists():
        corrupt_copy(paths[0], broken)
    return paths + [broken]


def run_demo(store_path: str | os.PathLike[str], media_dir: str | os.PathLike[str]) -> None:
    """Render three sample films (seeds 0-2) and a corrupt file, ingest, find the top pairs by
    colour, framing and motion, write the reports under ``<store>/report/<type>/``, and print
    where to look."""
    t0 = time.perf_counter()
    media_dir = Path(media_dir)
    click.echo(f"rendering sample films into {media_dir}/ ...")
    paths = make_media(media_dir, films=3)
    store = open_store(store_path)
    report = store.ingest(paths)
    for a in report.assets:
        click.echo(f"  ingested {a['alias']}: {a['frame_count']} frames, {a['duration_s']:.1f} s")
    for p, reason in report.failures:
        click.echo(f"  failed   {p}: {reason}  (recorded; the batch went on)")
    aliases = [a["alias"] for a in report.assets]
    for kind in MATCH_TYPES:
        t = time.perf_counter()
        computed = computed_by_feature(prepare(store, aliases, kind))
        work = ", ".join(f"{k} {v}" for k, v in computed.items() if v) or "nothing (all stored)"
        click.echo(f"\nmatch cuts by {kind} ({time.perf_counter() - t:.1f} s; computed: {work})")
        click.echo(f"within {aliases[0]} (the film's designed matches):")
        click.echo(table(display_table(top_pairs(store, aliases[:1], kind, top=5))))
        out = store.root / "report" / kind
        pairs = match_cut(store, aliases, kind, top=10, across_only=True, report_dir=out)
        click.echo("across films (the films share their edit, so scene i matches scene i):")
        click.echo(table(display_table(pairs.head(5))))
        click.echo(f"  report: {out / 'report.html'}  sheet: {out / 'contact_sheet.png'}")
    click.echo(f"\nstore: {store.root}   (open the report.html files in a browser)")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")

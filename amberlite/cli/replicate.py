"""``amberlite replicate``: keep a vector feature in a nearest-neighbour index.

    amberlite replicate add FEATURE --to hnsw [--space cosine --M 16 --ef-construction 200
        --ef 64]
    amberlite replicate status
    amberlite replicate sync
    amberlite replicate rebuild FEATURE
    amberlite replicate remove FEATURE [--to hnsw]

Registered in :mod:`amberlite.cli` (``main.add_command(replicate)``).
"""

from __future__ import annotations

import click

from amberlite.cli.util import friendly, store_of
from amberlite.cli.util import table as _table


@click.group("replicate")
def replicate() -> None:
    """Replicas of feature values in other systems (a vector index), kept in step."""


@replicate.command("add")
@click.argument("feature")
@click.option("--to", "target", default="hnsw", show_default=True, help="Replica target.")
@click.option("--space", type=click.Choice(["cosine", "l2", "ip"]), default="cosine")
@click.option("--M", "m", type=click.IntRange(2, 128), default=16, show_default=True)
@click.option(
    "--ef-construction",
    "--ef_construction",
    "ef_construction",
    type=click.IntRange(4, 10_000),
    default=200,
    show_default=True,
)
@click.option("--ef", type=click.IntRange(1, 100_000), default=64, show_default=True)
@click.pass_context
@friendly
def add(
    ctx: click.Context, feature: str, target: str, space: str, m: int, ef_construction: int, ef: int
) -> None:
    """Declare a replica of FEATURE (name or name@version) and index its stored values."""
    store = store_of(ctx)
    info = store.replicas.add(
        feature, target, space=space, M=m, ef_construction=ef_construction, ef=ef
    )
    row = _row(store, info.key, info.target)
    click.echo(
        f"{info.target} replica of {info.key.label}: {row['rows_indexed']} rows indexed "
        f"of {row['rows_stored']} stored"
    )


def _row(store, key, target: str) -> dict:
    for r in store.replicas.status():
        if r["feature"] == key.label and r["params_key"] == key.params_key:
            if r["target"] == target:
                return r
    return {"rows_indexed": 0, "rows_stored": 0}


@replicate.command("status")
@click.pass_context
@friendly
def status(ctx: click.Context) -> None:
    """Per replica: rows indexed vs rows stored, lag (commits not yet applied) and health
    (each saved index is checked: checksum, commit id, ids and vectors against the values)."""
    rows = store_of(ctx).replicas.status()
    if not rows:
        click.echo("no replicas (add one with `amberlite replicate add FEATURE --to hnsw`)")
        return
    import polars as pl

    df = pl.DataFrame(
        [
            {
                "feature": r["feature"],
                "params": r["params_key"][:8],
                "target": r["target"],
                "rows_indexed": r["rows_indexed"],
                "rows_stored": r["rows_stored"],
                "lag_commits": r["lag_commits"],
                "health": r["health"] + (f" ({r['reason']})" if r["reason"] else ""),
                "options": ", ".join(f"{k}={v}" for k, v in sorted(r["options"].items())),
            }
            for r in rows
        ]
    )
    click.echo(_table(df))


@replicate.command("sync")
@click.pass_context
@friendly
def sync(ctx: click.Context) -> None:
    """Catch every replica up with the commits it has not applied yet (exit status 1 when a
    replica is damaged: rebuild it)."""
    damaged = False
    for name, changed in store_of(ctx).replicas.sync().items():
        if isinstance(changed, int):
            click.echo(f"{name}: {changed} rows applied")
        else:
            damaged = True
            click.secho(f"{name}: damaged ({changed.reason}); {changed.hint}", fg="red")
    if damaged:
        ctx.exit(1)


@replicate.command("rebuild")
@click.argument("feature")
@click.option("--to", "target", default=None, help="Only this target.")
@click.pass_context
@friendly
def rebuild(ctx: click.Context, feature: str, target: str | None) -> None:
    """Drop FEATURE's replicas and rebuild them from the stored values."""
    n = store_of(ctx).replicas.rebuild(feature, target)
    click.echo(f"rebuilt {feature}: {n} rows indexed")


@replicate.command("remove")
@click.argument("feature")
@click.option("--to", "target", default=None, help="Only this target.")
@click.pass_context
@friendly
def remove(ctx: click.Context, feature: str, target: str | None) -> None:
    """Stop replicating FEATURE: delete its replica declaration and index (values stay)."""
    n = store_of(ctx).replicas.remove(feature, target)
    click.echo(f"removed {n} replica(s) of {feature}")

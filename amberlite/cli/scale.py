"""The ``watch`` and ``backfill`` commands (registered on ``amberlite.cli.main``).

Helpers come from :mod:`amberlite.cli.util`, so that ``cli`` can import this module at its end.
"""

from __future__ import annotations

import click

from amberlite.cli.util import executor_of, friendly, store_of

_EXECUTOR = click.option(
    "--executor", default="local", show_default=True, type=click.Choice(["local", "ray"])
)
_ADDRESS = click.option("--address", default=None, help="Ray cluster address (--executor ray).")


@click.command()
@click.argument("folder", type=click.Path())
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Scan once and exit (no settling wait).")
@_EXECUTOR
@_ADDRESS
@click.pass_context
@friendly
def watch(
    ctx: click.Context,
    folder: str,
    interval: float,
    once: bool,
    executor: str,
    address: str | None,
) -> None:
    """Poll FOLDER: ingest new or changed media, compute on_ingest features (Ctrl-C stops)."""
    store = store_of(ctx, create=True)
    if not once:
        click.echo(f"watching {folder} every {interval:g} s (Ctrl-C stops)")
    cycles = store.watch(
        folder,
        interval,
        once=once,
        executor=executor_of(executor, address),
        on_cycle=lambda c: click.echo(c.summary()),
    )
    if once and not cycles:
        click.echo("nothing new")


@click.command()
@click.argument("feature")
@click.option("--from-version", type=int, default=None, help="Only assets that had this one.")
@click.option("--chunk", default=8, show_default=True, help="Assets per step (resume unit).")
@_EXECUTOR
@_ADDRESS
@click.pass_context
@friendly
def backfill(
    ctx: click.Context,
    feature: str,
    from_version: int | None,
    chunk: int,
    executor: str,
    address: str | None,
) -> None:
    """Compute FEATURE (name@version) over the assets that had an older version; rerun after
    an interruption to finish (done work is kept)."""
    report = store_of(ctx).backfill(
        feature,
        from_version=from_version,
        chunk=chunk,
        executor=executor_of(executor, address),
    )
    click.echo(report.summary())


COMMANDS = (watch, backfill)

"""The ``watch`` and ``backfill`` commands (registered on ``amberlite.cli.main``).

This module imports ``amberlite.cli`` lazily so that ``cli`` can import it at its end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``amberlite.cli.friendly``, looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from amberlite.cli_util import friendly

        return friendly(fn)(*args, **kwargs)

    return wrapper


def _store(ctx: click.Context):
    from amberlite.cli_util import _store as store_of

    return store_of(ctx)


def _executor(name: str, address: str | None) -> Any:
    if name != "ray":
        return name
    from amberlite.run.executor import make_executor

    return make_executor("ray", address=address)


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
@_friendly
def watch(
    ctx: click.Context,
    folder: str,
    interval: float,
    once: bool,
    executor: str,
    address: str | None,
) -> None:
    """Poll FOLDER: ingest new or changed media, compute on_ingest features (Ctrl-C stops)."""
    store = _store(ctx)
    if not once:
        click.echo(f"watching {folder} every {interval:g} s (Ctrl-C stops)")
    cycles = store.watch(
        folder,
        interval,
        once=once,
        executor=_executor(executor, address),
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
@_friendly
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
    report = _store(ctx).backfill(
        feature,
        from_version=from_version,
        chunk=chunk,
        executor=_executor(executor, address),
    )
    click.echo(report.summary())


COMMANDS = (watch, backfill)

"""The ``query``, ``explain`` and ``repl`` commands (registered on ``amberlite.cli.main``).

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


@click.command()
@click.argument("text")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("-o", "--output", type=click.Path(), default=None, help="Write to FILE.")
@click.pass_context
@_friendly
def query(ctx: click.Context, text: str, fmt: str, output: str | None) -> None:
    """Run one AQL statement and print its result table."""
    from amberlite.cli_util import emit
    from amberlite.query import run_query

    emit(run_query(_store(ctx), text), fmt, output)


@click.command()
@click.argument("text")
@click.pass_context
@_friendly
def explain(ctx: click.Context, text: str) -> None:
    """Print an AQL statement's plan and what each feature would read or compute."""
    from amberlite.query import explain as explain_text

    click.echo(explain_text(_store(ctx), text))


@click.command()
@click.pass_context
@_friendly
def repl(ctx: click.Context) -> None:
    """Interactive AQL shell (statements end with `;`, `.help` for commands, Ctrl-D exits)."""
    from amberlite.repl import Repl

    Repl(_store(ctx)).loop()


COMMANDS = (query, explain, repl)

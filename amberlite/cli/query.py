"""The ``query``, ``explain`` and ``repl`` commands (registered on ``amberlite.cli.main``).

Helpers come from :mod:`amberlite.cli.util`, so that ``cli`` can import this module at its end.
"""

from __future__ import annotations

import click

from amberlite.cli.util import friendly, store_of


@click.command()
@click.argument("text")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("-o", "--output", type=click.Path(), default=None, help="Write to FILE.")
@click.pass_context
@friendly
def query(ctx: click.Context, text: str, fmt: str, output: str | None) -> None:
    """Run one AQL statement and print its result table."""
    from amberlite.cli.util import emit
    from amberlite.query import run_query

    emit(run_query(store_of(ctx), text), fmt, output)


@click.command()
@click.argument("text")
@click.pass_context
@friendly
def explain(ctx: click.Context, text: str) -> None:
    """Print an AQL statement's plan and what each feature would read or compute."""
    from amberlite.query import explain as explain_text

    click.echo(explain_text(store_of(ctx), text))


@click.command()
@click.pass_context
@friendly
def repl(ctx: click.Context) -> None:
    """Interactive AQL shell (statements end with `;`, `.help` for commands, Ctrl-D exits)."""
    from amberlite.repl import Repl

    Repl(store_of(ctx)).loop()


COMMANDS = (query, explain, repl)

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
    from amberlite.cli.util import emit, rows_table
    from amberlite.query import run

    if fmt == "table" and output is None:  # a warm query prints without loading polars
        store = store_of(ctx)
        with store.catalog.pinned():  # one catalog connection for the whole statement
            result = run(store, text, rows=True)
        if result.rows is not None:
            text_table = rows_table(result.columns, result.rows)
            if text_table is not None:
                click.echo(text_table)
                return
        emit(result.table, fmt, output)
        return
    emit(run(store_of(ctx), text).table, fmt, output)


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

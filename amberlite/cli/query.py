"""The ``query``, ``explain`` and ``repl`` commands (registered on ``amberlite.cli.main``).

Helpers come from :mod:`amberlite.cli.util`, so that ``cli`` can import this module at its end.
"""

from __future__ import annotations

import sys

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
@click.option(
    "-f",
    "--file",
    "script",
    type=click.File("r"),
    default=None,
    help="Run the statements of FILE (`-` for stdin) and exit; stop at the first error.",
)
@click.pass_context
@friendly
def repl(ctx: click.Context, script) -> None:
    """Interactive AQL shell (statements end with `;`, `.help` for commands, Ctrl-D exits).

    With -f FILE, or when stdin is not a terminal, runs the statements without a prompt and
    exits with status 2 at the first error (`error: line N: ...`)."""
    from amberlite.repl import Repl

    if script is None and not sys.stdin.isatty():
        script = sys.stdin
    if script is not None:
        status = Repl(store_of(ctx), interactive=False).script(script.read().splitlines())
        sys.exit(status)
    Repl(store_of(ctx)).loop()


COMMANDS = (query, explain, repl)

"""Helpers shared by every ``amberlite`` command module: store lookup, error handling, output.

Command modules import from here, never from :mod:`amberlite.cli`, so that ``cli`` can add
their commands without an import cycle (also under ``python -m amberlite.cli``).

Start-up: this module and every command module import only click and the standard library at
module level, so that ``amberlite --help`` stays fast. A command imports what it needs
(polars, the store, torch...) inside its function, with one ``from amberlite.X import Y``
statement per line; ``tests/test_cli_startup.py`` checks this.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import polars as pl


def table(df: pl.DataFrame, rows: int = 50) -> str:
    """A result table as Markdown-style text, up to 200 characters wide (cells never wrap at
    the terminal's width)."""
    import polars as pl

    with pl.Config(
        tbl_rows=rows,
        tbl_cols=20,
        tbl_width_chars=200,
        fmt_str_lengths=60,
        tbl_hide_dataframe_shape=True,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_hide_column_data_types=True,
    ):
        return str(df)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn amberlite's own errors into a message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from amberlite.errors import AmberliteError

        try:
            return fn(*args, **kwargs)
        except AmberliteError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def store_of(ctx: click.Context):
    from amberlite.store import open as open_store

    if "store" not in ctx.obj:
        ctx.obj["store"] = open_store(ctx.obj["store_path"])
    return ctx.obj["store"]


def executor_of(name: str, address: str | None) -> Any:
    """The executor a ``--executor``/``--address`` pair names (a Ray one is started here)."""
    if name != "ray":
        return name
    from amberlite.run.executor import make_executor

    return make_executor("ray", address=address)


def emit(df: pl.DataFrame, fmt: str, output: str | None) -> None:
    """Write a result table in a format, to a file or standard output."""
    if fmt == "parquet":
        if not output:
            raise click.BadParameter("parquet needs -o FILE", param_hint="--format")
        df.write_parquet(output)
        return
    if fmt == "csv":
        text = _flat(df).write_csv()
    elif fmt == "json":
        text = df.write_json()
    else:
        text = table(df)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text)


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """CSV has no nested values: lists and arrays print as JSON text."""
    import polars as pl

    nested = [c for c, t in df.schema.items() if isinstance(t, (pl.List, pl.Array, pl.Struct))]
    return df.with_columns(
        pl.Series(c, [json.dumps(v) for v in df[c].to_list()], dtype=pl.String) for c in nested
    )


_table = table

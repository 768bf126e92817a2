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
from collections.abc import Callable, Sequence
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


def rows_table(columns: Sequence[str], rows: Sequence[tuple], limit: int = 50) -> str | None:
    """The same Markdown-style table as :func:`table`, from Python rows of scalars (numbers,
    text, booleans, NULLs), without polars; None when a cell is nested (a list, a struct):
    those print through polars."""
    cells = [[_cell(v) for v in row] for row in rows]
    if any(c is None for row in cells for c in row):
        return None
    if len(cells) > limit:
        half = limit // 2
        cells = cells[:half] + [["..."] * len(columns)] + cells[-half:]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def _cell(v: Any) -> str | None:
    """A scalar as polars prints it (None for a value that is not a scalar)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v).replace("inf", "inf")
        if v == int(v) and abs(v) < 1e15:
            return f"{v:.1f}"
        if abs(v) >= 1e15 or abs(v) < 1e-4:
            return f"{v:.4e}"
        return f"{v:.6f}".rstrip("0")
    if isinstance(v, str):
        return v if len(v) <= 60 else v[:60] + "..."
    return None


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn amberlite's own errors into a message and exit status 2, and Ctrl-C into a line
    saying what was kept and exit status 130 (the runs it stopped are recorded as
    interrupted: see amberlite.run.resolve)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from amberlite.errors import AmberliteError, StoreFull, out_of_space

        try:
            return fn(*args, **kwargs)
        except AmberliteError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt as e:
            runs = getattr(e, "runs", [])
            computed = sum(s.computed for s in runs)
            failed = sum(s.failed for s in runs)
            click.echo(
                f"interrupted: {computed} computed, {failed} failed; committed values are kept; "
                "run again to finish",
                err=True,
            )
            sys.exit(130)
        except Exception as e:  # a full disk met where no amberlite code could name it
            if not out_of_space(e):
                raise
            ctx = click.get_current_context(silent=True)
            where = ctx.obj.get("store_path", "the store") if ctx and ctx.obj else "the store"
            click.secho(f"error: {StoreFull(where, e)}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def store_of(ctx: click.Context, create: bool = False):
    """The store ``--store`` names. Commands that only read (``create=False``) never create
    one; writing commands (``create=True``: ``init``, ``ingest``, ``apply``, ``watch``,
    ``matchcut``) create it only in a missing or empty folder whose parent exists."""
    from amberlite.store import check_store_path
    from amberlite.store import open as open_store

    if "store" not in ctx.obj:
        check_store_path(ctx.obj["store_path"], create, strict=True)
        ctx.obj["store"] = open_store(ctx.obj["store_path"], create=create)
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

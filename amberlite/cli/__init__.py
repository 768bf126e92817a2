"""The ``amberlite`` command. Bad input prints a one-line reason and exits 2 (no traceback).

The group and its options are here; the commands live in one module per group (``store``,
``query``, ``matchcut``, ``replicate``, ``scale``), helpers in :mod:`amberlite.cli.util`. Only
click is imported at start-up: each command imports the store, polars, torch... when it runs,
so ``amberlite --help``, ``--version`` and ``amberlite CMD --help`` stay fast.
"""

from __future__ import annotations

import click

from amberlite.version import __version__


@click.group()
@click.option(
    "--store",
    "store_path",
    envvar="AMBERLITE_STORE",
    default="amberlite-store",
    show_default=True,
    help=(
        "Store folder. Read-only commands need an existing store; init, ingest and apply "
        "create one in a new or empty folder."
    ),
)
@click.option("-v", "--verbose", count=True, help="Log plan steps (-v) and debug (-vv).")
@click.version_option(__version__, prog_name="amberlite")
@click.pass_context
def main(ctx: click.Context, store_path: str, verbose: int) -> None:
    """amberlite: declare media features once, memoize every value, query with AQL."""
    import logging

    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = {"store_path": store_path}


# Commands defined in their own modules (helpers from amberlite.cli.util) are added here.
from amberlite.cli.annotate import annotate  # noqa: E402
from amberlite.cli.matchcut import matchcut  # noqa: E402
from amberlite.cli.query import COMMANDS as _QUERY_COMMANDS  # noqa: E402
from amberlite.cli.replicate import replicate  # noqa: E402
from amberlite.cli.scale import COMMANDS as _SCALE_COMMANDS  # noqa: E402
from amberlite.cli.serve import serve  # noqa: E402
from amberlite.cli.store import COMMANDS as _STORE_COMMANDS  # noqa: E402

for _command in (
    *_STORE_COMMANDS,
    *_QUERY_COMMANDS,
    *_SCALE_COMMANDS,
    matchcut,
    replicate,
    annotate,
    serve,
):
    main.add_command(_command)

"""The AQL shell: prompt_toolkit with history in the store, completion, multi-line input.

A statement runs when a line ends with ``;``. Dot commands (one line, no ``;``): ``.explain
on|off`` (print the plan before each result), ``.timer on|off``, ``.format table|csv``,
``.help``; Ctrl-D (or ``.quit``) exits, Ctrl-C drops the statement being typed, or cancels
the one running (values already committed are kept, claims are given back).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from amberlite.errors import AmberliteError

if TYPE_CHECKING:
    from amberlite.store import Store

KEYWORDS = (
    "SELECT FROM WHERE GROUP BY HAVING ORDER LIMIT OFFSET JOIN ON AS OF AND OR NOT IN LIKE IS "
    "NULL BETWEEN TRUE FALSE ASC DESC MATCH TOP ACROSS ASSETS NEAREST TO WITH SHOW FEATURES "
    "ENTITIES DESCRIBE EXPLAIN DURING OVERLAPS CONTAINS BEFORE AFTER count min max avg sum"
).split()
HELP = """statements end with `;` and may span lines. Commands:
  .explain on|off   print the plan before each result
  .timer on|off     print the time each statement takes
  .format table|csv result format
  .help             this text
  Ctrl-D            exit"""


DOT_COMMANDS = (".explain", ".timer", ".format", ".help", ".quit", ".exit")


def completer(store: Store):
    """Context-aware completion: after FROM/JOIN the entity sets (``shots``, ``frames``,
    ``assets`` and declared types), after OF the asset aliases (quoted), a ``.`` at the start
    of a line the dot-commands, elsewhere keywords, features and columns."""
    import re

    from prompt_toolkit.completion import Completer, Completion

    features = sorted(set(store.registry.names()))
    sets = sorted({t + "s" for t in ["asset", "frame", "shot", *store.entity_types()]})
    columns = ["id", "asset", "start_s", "end_s"]
    general = sorted(set(KEYWORDS) | set(features) | set(columns), key=str.lower)

    def aliases() -> list[str]:
        return sorted(r[0] for r in store.catalog.query("SELECT alias FROM assets"))

    class AqlCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            line = document.current_line_before_cursor
            if line.lstrip().startswith(".") and " " not in line.strip():
                word, options = line.strip(), list(DOT_COMMANDS)
            else:
                m = re.search(r"('?)(\w*)$", text)
                quote, word = m.group(1), m.group(2)
                before = [t.upper() for t in re.findall(r"\w+|[(,]", text[: m.start()])]
                prev = before[-1] if before else ""
                if prev in ("FROM", "JOIN"):
                    options = sets
                elif prev == "OF" or (prev in ("(", ",") and "OF" in before[-6:]):
                    options, word = [f"'{a}'" for a in aliases()], quote + word
                else:
                    options = general
            for o in options:
                if o.lower().startswith(word.lower()):
                    yield Completion(o, start_position=-len(word))

    return AqlCompleter()


class Repl:
    """One interactive session over a store."""

    def __init__(self, store: Store, interactive: bool = True) -> None:
        self.store = store
        self.explain = False
        self.timer = False
        self.fmt = "table"
        if not interactive:  # a script: no terminal, no prompt_toolkit
            return
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        self.session: PromptSession[str] = PromptSession(
            history=FileHistory(str(store.root / ".aql_history")),
            completer=completer(store),
        )

    def loop(self) -> None:
        buffer: list[str] = []
        while True:
            try:
                line = self.session.prompt("aql> " if not buffer else "...> ")
            except KeyboardInterrupt:
                buffer = []
                continue
            except EOFError:
                click.echo("bye")
                return
            if line.strip().startswith("."):
                if buffer:  # inside an open statement a dot-command would become part of it
                    click.echo(
                        "dot-commands run at the start of a statement; finish this one "
                        "with `;` (or drop it with Ctrl-C) first"
                    )
                    continue
                if self.command(line.strip()) == "quit":
                    return
                continue
            buffer.append(line)
            if line.rstrip().endswith(";"):
                self.run("\n".join(buffer))
                buffer = []

    def command(self, line: str) -> str | None:
        name, _, arg = line.partition(" ")
        arg = arg.strip().lower()
        if name in (".quit", ".exit"):
            return "quit"
        if name == ".help":
            click.echo(HELP)
        elif name in (".explain", ".timer") and arg in ("on", "off"):
            setattr(self, name[1:], arg == "on")
            click.echo(f"{name[1:]} {arg}")
        elif name == ".format" and arg in ("table", "csv"):
            self.fmt = arg
            click.echo(f"format {arg}")
        else:
            click.echo(f"unknown command {line!r}; .help lists them")
        return None

    def script(self, lines: list[str]) -> int:
        """Run statements (and dot-commands at the start of a statement) without a prompt;
        stop at the first error with ``error: line N: ...`` on stderr. Returns the exit
        status: 0, or 2 after an error."""
        buffer: list[str] = []
        start = 0
        for n, line in enumerate(lines, 1):
            if not buffer and not line.strip():
                continue
            if not buffer and line.strip().startswith("."):
                if self.command(line.strip()) == "quit":
                    return 0
                continue
            if not buffer:
                start = n
            buffer.append(line)
            if line.rstrip().endswith(";"):
                if not self.run("\n".join(buffer), line=start):
                    return 2
                buffer = []
        if any(b.strip() for b in buffer):
            click.secho(f"error: line {start}: statement not terminated with `;`", err=True)
            return 2
        return 0

    def run(self, text: str, line: int | None = None) -> bool:
        """Run one statement and print its result; False after an error (printed)."""
        from amberlite.cli.util import emit
        from amberlite.query import explain, run_query

        started = time.perf_counter()
        try:
            if self.explain:
                click.echo(explain(self.store, text))
            df = run_query(self.store, text)
        except AmberliteError as e:
            if line is None:
                click.secho(f"error: {e}", fg="red")
            else:
                click.echo(f"error: line {line}: {e}", err=True)
            return False
        except KeyboardInterrupt as e:  # Ctrl-C: cancel the statement, keep the session
            computed = sum(s.computed for s in getattr(e, "runs", []))
            click.echo(f"cancelled ({computed} values computed and kept)")
            if line is not None:
                raise
            return False
        if df.columns == ["plan"] and text.lstrip().upper().startswith("EXPLAIN"):
            click.echo("\n".join(df["plan"].to_list()))  # plain text, not a cut table
        else:
            emit(df, self.fmt, None)
        if self.timer:
            click.echo(f"time: {time.perf_counter() - started:.3f} s ({df.height} rows)")
        return True

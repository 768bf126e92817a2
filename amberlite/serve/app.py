"""The HTTP API (``/v1``) and the web app, over one store.

Handlers are a few lines each over the functions the command line calls: AQL through
:mod:`amberlite.query`, match cuts through :mod:`amberlite.matchcut`, materializations
through :mod:`amberlite.serve.jobs` (worker processes), pictures and clips through
:mod:`amberlite.serve.media`. Handlers that touch the store are plain ``def`` functions, so
the ASGI server runs them in its thread pool and the event loop never waits on DuckDB,
decoding or encoding. The server keeps no state of its own beyond caches of what the store
holds (frame indexes, clips on disk): any number of servers and CLI processes share a store.

Every error is a JSON object ``{"error": "...", "kind": "..."}`` with a 4xx status for a
request the server will not serve; a 500 means a bug and carries no traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import math
import re
import threading
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from amberlite.errors import (
    AmberliteError,
    AnnotationError,
    AqlError,
    AqlSyntaxError,
    MediaError,
    ResolveError,
)
from amberlite.serve import jobs
from amberlite.serve.bind import LOCAL_HOSTS
from amberlite.serve.media import MAX_CLIP_S, BadMediaRequest, Media, Span
from amberlite.version import __version__

log = logging.getLogger(__name__)

MAX_ROWS = 10_000  # rows one query answers (a larger `limit` is refused)
MAX_BODY = 1 << 20  # bytes of a request body
ARROW_STREAM = "application/vnd.apache.arrow.stream"
TOKEN_COOKIE = "amberlite_token"
CACHE_HEADER = "X-Amberlite-Cache"  # hit | miss: whether /v1/query answered from its cache
REVIEW_LABELS = {"match-cut accepted": "accept", "match-cut rejected": "reject"}
REVIEW_TEXT = re.compile(r"(\S+) -> (\S+)")
WRITE_OK_READ_ONLY = frozenset({"/v1/query", "/v1/explain"})  # POSTs that only read


@dataclass(frozen=True)
class Settings:
    """How a server runs: the store, its token (None: no token), read-only, limits."""

    store: Path
    token: str | None = None
    read_only: bool = False
    max_compute_frames: int = 20_000  # a request computes inline over at most this many frames
    max_jobs: int = 2  # materializations running at once (started by any server)
    host: str = "127.0.0.1"  # where it listens: on localhost, other Host headers are refused


class HttpError(AmberliteError):
    """An error with its HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "request") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


# -- request bodies ---------------------------------------------------------------------------
class QueryBody(BaseModel):
    aql: str = Field(..., max_length=100_000, description="one AQL statement")
    params: dict[str, Any] = Field(default_factory=dict, description="values of $placeholders")
    limit: int = Field(1000, ge=1, le=MAX_ROWS, description=f"rows at most (<= {MAX_ROWS})")


class AnnotationBody(BaseModel):
    type: str = Field("comment", max_length=200)
    asset: str = Field(..., max_length=300)
    start_s: float
    end_s: float
    box: list[float] | None = Field(None, min_length=4, max_length=4, description="0-1 x0,y0,x1,y1")
    label: str | None = Field(None, max_length=1000)
    confidence: float | None = None
    text: str | None = Field(None, max_length=20_000)
    author: str = Field(..., min_length=1, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)


class EditBody(BaseModel):
    author: str = Field(..., min_length=1, max_length=200)
    changes: dict[str, Any]


class ReviewBody(BaseModel):
    a: str = Field(..., max_length=300, description="shot A (ref)")
    b: str = Field(..., max_length=300, description="shot B (ref)")
    decision: str = Field(..., pattern="^(accept|reject)$")
    author: str = Field(..., min_length=1, max_length=200)


class JobBody(BaseModel):
    feature: str = Field(..., max_length=200, description="feature name or name@version")
    assets: list[str] | None = Field(None, max_length=1000)
    params: dict[str, Any] | None = None


SETTINGS_ENV = "AMBERLITE_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    """The app of each worker process of ``amberlite serve --workers N`` (the settings come as
    JSON in ``$AMBERLITE_SERVE_SETTINGS``)."""
    import os

    data = json.loads(os.environ[SETTINGS_ENV])
    return create_app(Settings(**{**data, "store": Path(data["store"])}))


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app serving one store."""
    from amberlite.store import open as open_store

    store = open_store(settings.store, create=False)
    media = Media(store.ctx)
    computing = threading.BoundedSemaphore(1)  # inline computations at once, per process
    results = AnswerCache(256, store.catalog.changes)
    app = FastAPI(
        title="amberlite",
        version=__version__,
        description="AQL queries, frames, clips, match cuts and materializations over one "
        "amberlite store. Errors are JSON: {error, kind}.",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )
    app.state.settings, app.state.store, app.state.media = settings, store, media
    _errors(app)
    app.add_middleware(Guard, settings=settings)

    # -- work that would compute --------------------------------------------------------------
    def frames_of(asset_ids: list[str] | None) -> int:
        with store.catalog.read() as con:
            if asset_ids is None:
                return con.execute("SELECT coalesce(sum(frame_count), 0) FROM assets").fetchone()[0]
            return con.execute(
                "SELECT coalesce(sum(frame_count), 0) FROM assets WHERE asset_id IN "
                "(SELECT unnest(?::TEXT[]))",
                [asset_ids],
            ).fetchone()[0]

    def allow_compute(what: str, asset_ids: list[str] | None) -> threading.Semaphore:
        """Refuse (409) work over too many frames or on a read-only server; refuse (429)
        while this process computes another request; else the semaphore, held."""
        if settings.read_only:
            raise HttpError(
                409, f"{what} is not stored yet and this server is read-only", "needs-compute"
            )
        frames = frames_of(asset_ids)
        if frames > settings.max_compute_frames:
            raise HttpError(
                409,
                f"{what} is not stored yet and computing it reads {frames} frames (this "
                f"server computes at most {settings.max_compute_frames} in a request): start "
                "a job with POST /v1/jobs and query again when it is done",
                "needs-compute",
            )
        if not computing.acquire(blocking=False):
            raise HttpError(429, "the server is computing another request: retry shortly", "busy")
        return computing

    def run_query(body: QueryBody) -> tuple[Any, bool]:
        """A statement's result: from the cache while no commit (by any process) touched what
        it depends on (:class:`AnswerCache`); else read on one pinned cursor when nothing
        is missing (threads read concurrently); else computed within the limits
        (:func:`allow_compute`)."""
        from amberlite.query import statement

        key = (body.aql, json.dumps(body.params, sort_keys=True, default=str), body.limit)
        at = results.position()  # taken before reading: a cached answer is never too new
        hit = results.get(key)
        if hit is not None:
            return hit, True
        with store.catalog.pinned():  # this thread's reads on one cursor; threads read at once
            stmt = statement(store, body.aql, body.params, body.limit + 1)  # planned once
            todo = [s for s in stmt.work() if s.action == "compute"]
            if not todo:
                result = stmt.run(rows=True)
                results.put(key, at, stmt.depends(), result)
                return result, False
        scope = (
            None
            if any(s.asset_ids is None for s in todo)
            else sorted({a for s in todo for a in s.asset_ids or []})
        )
        held = allow_compute(", ".join(s.label for s in todo), scope)
        try:
            return stmt.run(rows=True), False
        finally:
            held.release()

    # -- AQL ----------------------------------------------------------------------------------
    @app.post("/v1/query", tags=["aql"])
    def query(request: Request, body: QueryBody) -> Response:
        """Run one AQL statement (SELECT, MATCH, SHOW, DESCRIBE, EXPLAIN): ``{columns, rows,
        truncated}``, or an Arrow IPC stream with ``Accept: application/vnd.apache.arrow.stream``.
        A statement that would compute more than the server allows gets 409. The header
        ``X-Amberlite-Cache`` says whether the answer came from the server's cache (``hit``)."""
        result, cached = run_query(body)
        headers = {CACHE_HEADER: "hit" if cached else "miss"}
        if ARROW_STREAM in request.headers.get("accept", ""):
            data = arrow_stream(result.table.head(body.limit))
            return Response(data, media_type=ARROW_STREAM, headers=headers)
        columns, rows = result_rows(result)
        return JSONResponse(
            {
                "columns": list(columns),
                "rows": [[jsonable(v) for v in r] for r in rows[: body.limit]],
                "truncated": len(rows) > body.limit,
            },
            headers=headers,
        )

    @app.post("/v1/explain", tags=["aql"])
    def explain(body: QueryBody) -> dict[str, Any]:
        """The plan of a statement and what each feature would read or compute."""
        from amberlite.query import explain as explain_text

        return {"plan": explain_text(store, body.aql, body.params)}

    @app.get("/v1/status", tags=["store"])
    def status() -> dict[str, Any]:
        """The store, its assets and features, and this server's mode."""
        from amberlite.query import run

        feats = run(store, "SHOW FEATURES").table
        return {
            "store": str(store.root),
            "version": __version__,
            "read_only": settings.read_only,
            "assets": asset_count(store),
            "features": [jsonable(r) for r in feats.rows(named=True)],
        }

    @app.get("/v1/assets", tags=["store"])
    def assets() -> dict[str, Any]:
        """Every asset: alias, id, size, frame rate, duration."""
        from amberlite.query import run

        result = run(
            store,
            "SELECT alias, asset_id, width, height, fps, frame_count, duration_s FROM assets",
            rows=True,
        )
        columns, rows = result_rows(result)
        return {"assets": [dict(zip(columns, map(jsonable, r))) for r in rows]}

    # -- media --------------------------------------------------------------------------------
    known: dict[str, str] = {}  # alias or id -> asset id, as resolved (assets keep both)

    def asset_id_of(ref: str) -> str:
        if ref in known:  # a frame request then opens no catalog connection
            return known[ref]
        try:
            asset_id = store.resolve_assets([ref])[0]
        except ResolveError as e:
            raise HttpError(404, str(e), "not-found") from None
        if len(known) < 100_000:
            known[ref] = asset_id
        return asset_id

    def shot(ref: str) -> dict[str, Any]:
        from amberlite.query import run

        result = run(
            store,
            "SELECT id, ref, asset, asset_id, index, start_frame, end_frame, start_s, end_s "
            "FROM shots WHERE ref = $ref OR id = $ref",
            rows=True,
            params={"ref": ref},
        )
        columns, rows = result_rows(result)
        if not rows:
            raise HttpError(404, f"no shot {ref!r} (a shot is film1/3 or its id)", "not-found")
        return dict(zip(columns, rows[0]))

    @app.get("/v1/assets/{asset}/frame.jpg", tags=["media"], response_class=Response)
    def frame(
        asset: str,
        t: float | None = Query(None, description="seconds"),
        n: int | None = Query(None, description="frame number"),
        w: int | None = Query(None, description="width to fit (aspect kept)"),
        h: int | None = Query(None, description="height to fit (aspect kept)"),
    ) -> Response:
        """A frame as JPEG, at a time or a frame number, scaled to fit w x h."""
        asset_id = asset_id_of(asset)
        number = media.frame_number(asset_id, t, n)
        return Response(
            media.frame_jpeg(asset_id, number, w, h),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/v1/shots/strip.jpg", tags=["media"], response_class=Response)
    def strip(
        ref: str = Query(..., max_length=300, description="shot ref (film1/3) or id"),
        count: int = Query(5, ge=1, le=32),
        h: int = Query(90, ge=8, le=1080),
    ) -> Response:
        """A shot's thumbnail strip: ``count`` frames side by side, ``h`` pixels high."""
        s = shot(ref)
        span = Span(s["asset_id"], s["start_frame"], s["end_frame"])
        return Response(
            media.strip_jpeg(span, count, h),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/v1/shots/info", tags=["media"])
    def shot_info(ref: str = Query(..., max_length=300)) -> dict[str, Any]:
        """A shot's asset, frames and seconds, and how a browser plays it: ``play`` is
        ``{url, start}``, a video to load and the time in it where the shot starts (the
        asset's own file from ``start_s``, or a clip from 0 when the file is not one browsers
        play; such clips stop after 30 s)."""
        info = {k: jsonable(v) for k, v in shot(ref).items()}
        asset = urllib.parse.quote(info["asset_id"], safe="")
        if media.playable(info["asset_id"])[0]:
            url = f"/v1/assets/{asset}/video#t={info['start_s']},{info['end_s']}"
            info["play"] = {"url": url, "start": info["start_s"]}
        else:
            end = min(info["end_s"], info["start_s"] + MAX_CLIP_S)
            url = f"/v1/assets/{asset}/clip.mp4?start={info['start_s']}&end={end}"
            info["play"] = {"url": url, "start": 0.0}
        return info

    @app.get("/v1/assets/{asset}/video", tags=["media"], response_class=FileResponse)
    def video(asset: str):
        """The asset's own file, when browsers play it as it is (H.264, AV1 or VP9 in MP4 or
        MOV; VP8, VP9 or AV1 in WebM; its first frame at 0 s): any time range plays and seeks
        by byte ranges, nothing is transcoded. Else 409 (``not-playable``): use ``clip.mp4``."""
        asset_id = asset_id_of(asset)
        mime, why = media.playable(asset_id)
        if mime is None:
            raise HttpError(409, f"{why}: ask for clip.mp4 of a time range", "not-playable")
        return FileResponse(media.view(asset_id).path, media_type=mime)

    @app.get("/v1/assets/{asset}/clip.mp4", tags=["media"], response_class=FileResponse)
    def clip(asset: str, start: float = Query(..., ge=0), end: float = Query(..., gt=0)):
        """An MP4 (H.264) of ``[start, end)`` seconds of an asset (at most 30 s), made once and
        cached in the store; byte-range requests work, so a browser can seek."""
        asset_id = asset_id_of(asset)
        path = media.clip([media.span_of_seconds(asset_id, start, end)])
        return FileResponse(path, media_type="video/mp4")

    @app.get("/v1/cut.mp4", tags=["media", "match cuts"], response_class=FileResponse)
    def cut(
        a: str = Query(..., max_length=300, description="shot A (ref or id)"),
        b: str = Query(..., max_length=300, description="shot B (ref or id)"),
        pre: float = Query(1.0, gt=0, le=10, description="seconds of A before the cut"),
        post: float = Query(1.0, gt=0, le=10, description="seconds of B after the cut"),
    ):
        """The cut as it plays: the last ``pre`` seconds of shot A, then the first ``post``
        seconds of shot B, as one MP4."""
        sa, sb = shot(a), shot(b)
        span_a = media.span_of_seconds(
            sa["asset_id"], max(sa["start_s"], sa["end_s"] - pre), sa["end_s"]
        )
        span_b = media.span_of_seconds(
            sb["asset_id"], sb["start_s"], min(sb["end_s"], sb["start_s"] + post)
        )
        span_a = Span(span_a.asset_id, span_a.start, min(span_a.end, sa["end_frame"]))
        span_b = Span(span_b.asset_id, span_b.start, min(span_b.end, sb["end_frame"]))
        return FileResponse(media.clip([span_a, span_b]), media_type="video/mp4")

    # -- match cuts ---------------------------------------------------------------------------
    @app.get("/v1/matchcuts", tags=["match cuts"])
    def matchcuts(
        assets: list[str] | None = Query(None, max_length=100),
        type: str = Query("color", max_length=100, description="color, framing, motion..."),
        top: int = Query(10, ge=1, le=500),
        across: bool = Query(False, description="only pairs across assets"),
    ) -> dict[str, Any]:
        """The top pairs of shots by a match type, through the memoized path of ``amberlite
        matchcut`` (values not stored yet are computed within the server's limits)."""
        from amberlite.library.match_types import DEDUP, resolve_match_type
        from amberlite.matchcut import match_cut

        asset_ids = [asset_id_of(a) for a in assets] if assets else None
        mspec = resolve_match_type(store.registry, type)
        need = [store.feature(mspec.feature), store.feature(DEDUP)]
        held = None
        if not all(store.resolver.is_complete(s, None, asset_ids) for s in need):
            held = allow_compute(f"{mspec.feature} over the assets", asset_ids)
        try:
            pairs = match_cut(store, asset_ids, type, top, across, progress=False)
        finally:
            if held is not None:
                held.release()
        return {
            "type": type,
            "pairs": [{k: jsonable(v) for k, v in r.items()} for r in pairs.iter_rows(named=True)],
        }

    # -- jobs ---------------------------------------------------------------------------------
    def progress(record: dict[str, Any]) -> dict[str, int] | None:
        try:
            spec = store.feature(record["feature"])
            scope = store.resolve_assets(record["assets"])
            return store.resolver.counts(spec, record["params"], scope)
        except AmberliteError:
            return None

    @app.post("/v1/jobs", tags=["jobs"], status_code=202)
    def start_job(body: JobBody) -> dict[str, Any]:
        """Start materializing a feature (inputs first) in a worker process."""
        spec = store.feature(body.feature)  # unknown names fail here, with a suggestion
        scope = store.resolve_assets(body.assets)
        return jobs.start(store.root, spec.key, scope, body.params, settings.max_jobs)

    @app.get("/v1/jobs", tags=["jobs"])
    def list_jobs() -> dict[str, Any]:
        """Every job of the store (newest first) with its state and progress."""
        return {"jobs": jobs.list_jobs(store.root, progress)}

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def job(job_id: str) -> dict[str, Any]:
        """A job's state (running, done, failed, cancelled, lost) and progress."""
        return jobs.status(store.root, job_id, progress)

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Stop a running job (committed values are kept)."""
        return jobs.cancel(store.root, job_id)

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    async def job_events(job_id: str) -> StreamingResponse:
        """Server-sent events: the job's status every half second until it ends."""
        await run_in_threadpool(jobs.status, store.root, job_id)  # 404 before streaming

        async def events():
            while True:
                record = await run_in_threadpool(jobs.status, store.root, job_id, progress)
                yield f"data: {json.dumps(record)}\n\n"
                if record["state"] != "running":
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- annotations --------------------------------------------------------------------------
    notes = store.annotations
    adds = GroupCommit(notes.add_many)

    @app.get("/v1/annotations", tags=["annotations"])
    def list_annotations(
        type: str | None = Query(None, max_length=200),
        asset: str | None = Query(None, max_length=300),
        start_s: float | None = None,
        end_s: float | None = None,
        q: str | None = Query(None, max_length=200, description="words in label or text"),
        include_deleted: bool = False,
        limit: int = Query(1000, ge=1, le=MAX_ROWS),
    ) -> dict[str, Any]:
        """Annotations overlapping a time window. ``q`` searches them as AQL's ``MATCHES``
        does (docs/aql.md): those whose label or text holds every word, best first (BM25, in
        ``relevance``; a record found this way has AQL's columns: no ``created_at`` /
        ``updated_at``); with ``include_deleted``, removed ones holding every word follow."""
        if not q:
            found = notes.list(type, asset, start_s, end_s, include_deleted)
        else:
            found = search_annotations(q, type, asset, start_s, end_s, limit + 1)
            if include_deleted:
                found += removed_holding(q, type, asset, start_s, end_s)
        return {
            "annotations": [jsonable(a) for a in found[:limit]],
            "truncated": len(found) > limit,
        }

    def search_annotations(q, type_name, asset, start_s, end_s, limit) -> list[dict[str, Any]]:
        """Ranked ``label MATCHES $q OR text MATCHES $q`` over each type (or ``type_name``):
        fixed query text, the words and the window as parameters; a type's name is one of
        the store's (checked), quoted as an AQL string."""
        from amberlite.query import run
        from amberlite.syntax.printer import quote_string

        names = [notes.type(type_name).name] if type_name else list(notes.types())
        where, params = ["(a.label MATCHES $q OR a.text MATCHES $q)"], {"q": q}
        if asset is not None:
            where.append("a.asset_id = $asset")
            params["asset"] = store.resolve_assets([asset])[0]  # an alias or an id
        if start_s is not None:
            where.append("a.end_s >= $start_s")
            params["start_s"] = float(start_s)
        if end_s is not None:
            where.append("a.start_s <= $end_s")
            params["end_s"] = float(end_s)
        hits = []
        for name in names:
            text = f"SELECT a.* FROM annotations({quote_string(name)}) a WHERE "
            text += " AND ".join(where) + " ORDER BY a.relevance DESC, a.id"
            table = run(store, text, params=params, limit=limit).table
            for row in table.iter_rows(named=True):
                for k in ("ref", "asset_id", "start_frame", "end_frame"):
                    row.pop(k, None)
                hits.append({"type": name, **row, "deleted": False})
        hits.sort(key=lambda r: (-(r["relevance"] or 0.0), r["type"], r["id"]))
        return hits

    def removed_holding(q, type_name, asset, start_s, end_s) -> list[dict[str, Any]]:
        """Removed annotations (not searchable by MATCHES) whose label or text holds every
        word of ``q`` (its words as MATCHES splits them)."""
        from amberlite.annotations.search import words

        want = set(words(q))
        out = []
        for a in notes.list(type_name, asset, start_s, end_s, include_deleted=True):
            if a["deleted"] and any(want <= set(words(a.get(k) or "")) for k in ("label", "text")):
                out.append({**a, "relevance": None})
        return out

    @app.post("/v1/annotations", tags=["annotations"], status_code=201)
    def add_annotation(body: AnnotationBody) -> dict[str, Any]:
        """Add an annotation (a ``comment`` with a box: a person's note on a frame). Adds
        arriving together are committed in one catalog transaction (:class:`GroupCommit`)."""
        record = body.model_dump(exclude={"fields"})
        clash = sorted(set(record) & set(body.fields))
        if clash:
            raise HttpError(400, f"fields: {clash[0]!r} is a top-level key, not a field", "fields")
        return jsonable(adds.submit({**record, **body.fields}))

    @app.get("/v1/annotations/{ann_id}", tags=["annotations"])
    def get_annotation(ann_id: str) -> dict[str, Any]:
        return jsonable(notes.get(ann_id))

    @app.patch("/v1/annotations/{ann_id}", tags=["annotations"])
    def edit_annotation(ann_id: str, body: EditBody) -> dict[str, Any]:
        """Change fields; the history keeps old and new values."""
        return jsonable(notes.edit(ann_id, author=body.author, **body.changes))

    @app.delete("/v1/annotations/{ann_id}", tags=["annotations"])
    def remove_annotation(ann_id: str, author: str = Query(..., min_length=1)) -> dict[str, Any]:
        """Remove (soft-delete: it stays in history)."""
        notes.remove(ann_id, author=author)
        return jsonable(notes.get(ann_id))

    @app.get("/v1/annotations/{ann_id}/history", tags=["annotations"])
    def annotation_history(ann_id: str) -> dict[str, Any]:
        return {"history": jsonable(notes.history(ann_id))}

    # -- match-cut review: decisions are `comment` annotations -------------------------------
    def reviews() -> list[dict[str, Any]]:
        out = []
        for a in notes.list("comment"):
            m = REVIEW_TEXT.fullmatch(a.get("text") or "")
            if a.get("label") in REVIEW_LABELS and m:
                out.append(
                    {
                        "id": a["id"],
                        "a": m[1],
                        "b": m[2],
                        "decision": REVIEW_LABELS[a["label"]],
                        "author": a["author"],
                        "updated_at": a["updated_at"],
                    }
                )
        return out

    @app.post("/v1/matchcuts/review", tags=["match cuts"])
    def review(body: ReviewBody) -> dict[str, Any]:
        """Accept or reject a pair: a ``comment`` annotation on shot A's last second, label
        ``match-cut accepted`` / ``match-cut rejected``, text ``A -> B``; deciding again edits
        it (history keeps both)."""
        sa, sb = shot(body.a), shot(body.b)
        label = {"accept": "match-cut accepted", "reject": "match-cut rejected"}[body.decision]
        text = f"{sa['ref']} -> {sb['ref']}"
        known = [r for r in reviews() if (r["a"], r["b"]) == (sa["ref"], sb["ref"])]
        if known:
            record = notes.edit(known[0]["id"], author=body.author, label=label)
        else:
            start = max(sa["start_s"], sa["end_s"] - 1.0)
            new_id = notes.add(
                "comment",
                sa["asset_id"],
                start,
                sa["end_s"],
                label=label,
                text=text,
                author=body.author,
            )
            record = notes.get(new_id)
        return jsonable(record)

    @app.get("/v1/matchcuts/reviews", tags=["match cuts"])
    def list_reviews() -> dict[str, Any]:
        """Every reviewed pair and its decision."""
        return {"reviews": reviews()}

    def accepted_cuts() -> list[dict[str, Any]]:
        cuts = []
        for r in reviews():
            if r["decision"] != "accept":
                continue
            sa, sb = shot(r["a"]), shot(r["b"])
            va, vb = media.view(sa["asset_id"]), media.view(sb["asset_id"])
            cuts.append(
                {
                    "ref_a": sa["ref"],
                    "ref_b": sb["ref"],
                    "asset_a": sa["asset"],
                    "asset_b": sb["asset"],
                    "start_a": sa["start_s"],
                    "end_a": sa["end_s"],
                    "start_b": sb["start_s"],
                    "end_b": sb["end_s"],
                    "path_a": va.path,
                    "path_b": vb.path,
                    "fps_a": float(va.record.frame_rate),
                    "fps_b": float(vb.record.frame_rate),
                }
            )
        return sorted(cuts, key=lambda c: (c["ref_a"], c["ref_b"]))

    @app.get("/v1/matchcuts/export.edl", tags=["match cuts"], response_class=Response)
    def export_edl() -> Response:
        """Accepted cuts as a CMX3600 EDL (A's last second, then B's first)."""
        from amberlite.serve.export import edl

        return Response(
            edl(accepted_cuts()),
            media_type="text/plain",
            headers={"Content-Disposition": 'attachment; filename="cuts.edl"'},
        )

    @app.get("/v1/matchcuts/export.otio", tags=["match cuts"], response_class=Response)
    def export_otio() -> Response:
        """Accepted cuts as an OpenTimelineIO timeline."""
        from amberlite.serve.export import otio

        return Response(
            otio(accepted_cuts()),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="cuts.otio"'},
        )

    # -- the web app --------------------------------------------------------------------------
    static = resources.files("amberlite.serve") / "static"

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        page = HTMLResponse((static / "index.html").read_text(encoding="utf-8"))
        token = request.query_params.get("token")
        if settings.token and token and hmac.compare_digest(token, settings.token):
            page.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return page

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app


def asset_count(store: Any) -> int:
    with store.catalog.read() as con:
        return con.execute("SELECT count(*) FROM assets").fetchone()[0]


class AnswerCache:
    """Answers keyed by request, each valid until a commit (by any process) touches one of
    the change keys it depends on (:mod:`amberlite.catalog.changes`, read from the catalog's
    change journal: a stat and a few bytes, no DuckDB). An answer is put with the journal
    position taken *before* it was read, so a commit racing with the read only invalidates
    it."""

    def __init__(self, size: int, journal: Any) -> None:
        from collections import OrderedDict

        self.size, self.journal = size, journal
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def position(self) -> int:
        return self.journal.position()

    def get(self, key: Any) -> Any:
        with self.lock:
            found = self.items.get(key)
        if found is None:
            return None
        at, keys, value = found
        if self.journal.changed_since(at, keys):
            with self.lock:
                if self.items.get(key) is found:
                    del self.items[key]
            return None
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
        return value

    def put(self, key: Any, at: int, keys: frozenset[str], value: Any) -> None:
        with self.lock:
            self.items[key] = (at, keys, value)
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class GroupCommit:
    """Concurrent calls of one writer, committed together: ``submit(item)`` waits while a
    batch commits, then the items that arrived meanwhile go in one call of ``commit(items)``
    (one catalog transaction instead of one each). A batch that fails is retried item by item,
    so each caller gets its own answer or error."""

    def __init__(self, commit: Any) -> None:
        self.commit = commit
        self.lock = threading.Lock()
        self.pending: list[_Pending] = []
        self.busy = False  # a batch is being committed

    def submit(self, item: Any) -> Any:
        mine = _Pending(item)
        with self.lock:
            self.pending.append(mine)
            lead, self.busy = not self.busy, True
        if not lead:
            mine.done.wait()
            if not mine.lead:
                return mine.outcome()
        with self.lock:
            batch, self.pending = self.pending, []
        try:
            self._commit(batch)
        finally:
            with self.lock:
                if self.pending:  # arrived during the commit: the first leads the next batch
                    self.pending[0].lead = True
                    self.pending[0].done.set()
                else:
                    self.busy = False
        return mine.outcome()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = self.commit([p.item for p in batch])
            for p, r in zip(batch, results):
                p.result = r
        except Exception as e:  # noqa: BLE001 - each item's own error, below
            if len(batch) == 1:
                batch[0].error = e
            else:
                for p in batch:
                    try:
                        p.result = self.commit([p.item])[0]
                    except Exception as own:  # noqa: BLE001 - that caller's error
                        p.error = own
        finally:
            for p in batch:
                p.lead = False
                p.done.set()


class _Pending:
    def __init__(self, item: Any) -> None:
        self.item, self.result, self.error = item, None, None
        self.lead = False
        self.done = threading.Event()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


# -- results ----------------------------------------------------------------------------------
def result_rows(result: Any) -> tuple[tuple[str, ...], list[tuple]]:
    if result.rows is not None:
        return tuple(result.columns), result.rows
    table = result.table
    return tuple(table.columns), table.rows()


def jsonable(v: Any) -> Any:
    """A JSON value: NaN / inf become null, vectors lists, dates ISO text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return jsonable(v.tolist())
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def arrow_stream(table: Any) -> bytes:
    import pyarrow as pa

    arrow = table.to_arrow()
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, arrow.schema) as writer:
        writer.write_table(arrow)
    return buf.getvalue()


# -- errors -----------------------------------------------------------------------------------
def error_response(status: int, message: str, kind: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind, **extra}, status_code=status)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(AmberliteError)
    async def amberlite_error(request: Request, exc: AmberliteError) -> JSONResponse:
        if isinstance(exc, HttpError):
            return error_response(exc.status, str(exc), exc.kind)
        if isinstance(exc, AqlSyntaxError):
            return error_response(400, str(exc), "syntax", line=exc.line, column=exc.column)
        if isinstance(exc, ResolveError):
            return error_response(404 if request.method == "GET" else 400, str(exc), "resolve")
        if isinstance(exc, jobs.JobError):
            busy = "running" in str(exc)
            return error_response(429 if busy else 404, str(exc), "busy" if busy else "job")
        if isinstance(exc, BadMediaRequest):
            return error_response(400, str(exc), "media-request")
        if isinstance(exc, AnnotationError):
            missing = "no annotation" in str(exc) or "unknown id" in str(exc)
            return error_response(404 if missing else 400, str(exc), "annotation")
        if isinstance(exc, MediaError):
            return error_response(422, str(exc), "media")
        if isinstance(exc, AqlError):
            return error_response(400, str(exc), "aql")
        return error_response(400, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error_response(422, "; ".join(parts) or "bad request", "validation")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), "http")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error (logged by the server)", "internal")


class Guard:
    """ASGI middleware: the token, read-only mode and the body size limit, before any route."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await TooLarge()(scope, receive, send)

    def _refusal(self, scope: dict) -> Response | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        if self.settings.host in LOCAL_HOSTS and not _local_host(headers.get("host", "")):
            # a page elsewhere that resolves its own name to 127.0.0.1 (DNS rebinding)
            return error_response(400, "bad Host header for a server on localhost", "host")
        if self.settings.token and not self._authorized(headers, scope):
            return error_response(
                401,
                "missing or wrong token: send `Authorization: Bearer TOKEN` (or open the app "
                "at /?token=TOKEN once)",
                "auth",
            )
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            return TooLarge()
        read_only_write = method not in ("GET", "HEAD") and path not in WRITE_OK_READ_ONLY
        if self.settings.read_only and read_only_write:
            return error_response(403, "this server is read-only", "read-only")
        return None

    def _authorized(self, headers: dict[str, str], scope: dict) -> bool:
        token = self.settings.token or ""
        if scope["path"] == "/" or scope["path"].startswith("/static/"):
            return True  # the page itself holds no data; its API calls need the token
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].encode(), token.encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE and hmac.compare_digest(value.encode(), token.encode()):
                return True
        return False


def _local_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return name.strip("[]") in LOCAL_HOSTS


class BodyTooLarge(Exception):
    pass


class TooLarge:
    """The 413 answer; reads (and drops) a body of up to 8 x MAX_BODY first, so that a client
    still sending it reads the answer instead of a broken connection."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        drained = 0
        while drained <= 8 * MAX_BODY:
            message = await receive()
            drained += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        answer = error_response(413, f"request body over {MAX_BODY} bytes", "too-large")
        await answer(scope, receive, send)

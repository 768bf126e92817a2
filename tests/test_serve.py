"""`amberlite serve` over real HTTP: AQL (JSON and Arrow), frames, strips, clips and cuts,
match cuts, jobs, and every kind of bad request answered 4xx with a JSON error."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from tests.serve_support import Server, guarded, served_store, server  # noqa: F401

ARROW = "application/vnd.apache.arrow.stream"


def q(path: str, **params) -> str:
    return f"{path}?{urllib.parse.urlencode(params, doseq=True)}"


# -- AQL ----------------------------------------------------------------------------------------
def test_query_with_params_answers_json_and_arrow(server):
    body = {
        "aql": "SELECT ref, start_frame, end_frame FROM shots WHERE asset = $film ORDER BY index",
        "params": {"film": "film1"},
    }
    status, got = server.json("POST", "/v1/query", body)
    assert status == 200, got
    assert got["columns"] == ["ref", "start_frame", "end_frame"]
    assert got["rows"] == [["film1/0", 0, 25], ["film1/1", 25, 50], ["film1/2", 50, 75]]
    assert got["truncated"] is False

    import pyarrow as pa

    status, headers, data = server.request("POST", "/v1/query", body, headers={"Accept": ARROW})
    assert status == 200 and headers["content-type"] == ARROW
    table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
    assert table.column("ref").to_pylist() == ["film1/0", "film1/1", "film1/2"]

    hostile = {**body, "params": {"film": "film1' OR 'a' = 'a"}}
    assert server.json("POST", "/v1/query", hostile)[1]["rows"] == []


def test_limit_truncates_and_show_describe_explain_work(server):
    status, got = server.json("POST", "/v1/query", {"aql": "SELECT ref FROM shots", "limit": 2})
    assert status == 200 and len(got["rows"]) == 2 and got["truncated"] is True
    status, got = server.json("POST", "/v1/query", {"aql": "SHOW FEATURES"})
    assert status == 200 and "length" in [r[0] for r in got["rows"]]
    status, got = server.json("POST", "/v1/query", {"aql": "DESCRIBE shots"})
    assert status == 200 and got["rows"]
    status, got = server.json("POST", "/v1/explain", {"aql": "SELECT length FROM shots"})
    assert status == 200 and "length@1: stored 0, missing 6" in got["plan"]


def test_a_query_computes_small_work_inline(server):
    status, got = server.json(
        "POST", "/v1/query", {"aql": "SELECT ref, length FROM shots WHERE asset = 'film2'"}
    )
    assert status == 200, got
    assert [r[1] for r in got["rows"]] == [25, 25, 25]


# -- media --------------------------------------------------------------------------------------
def picture(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data))


def test_frames_at_a_time_or_number_keep_the_aspect(server):
    status, headers, data = server.request("GET", q("/v1/assets/film1/frame.jpg", t=1.5, w=64))
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert picture(data).size == (64, 36)
    status, _, data = server.request("GET", q("/v1/assets/film1/frame.jpg", n=37, w=100, h=100))
    assert status == 200 and picture(data).size == (100, 56)
    status, _, same = server.request("GET", q("/v1/assets/film1/frame.jpg", n=37, w=100))
    assert same == data  # t=1.5 s at 25 fps is frame 37: the same picture
    status, _, native = server.request("GET", q("/v1/assets/film1/frame.jpg", n=0))
    assert picture(native).size == (160, 90)


def test_strip_shows_count_frames_of_a_shot(server):
    status, _, data = server.request("GET", q("/v1/shots/strip.jpg", ref="film2/1", count=4, h=45))
    assert status == 200 and picture(data).size == (4 * 80, 45)


def test_cut_plays_end_of_a_into_start_of_b_with_byte_ranges(server):
    import av

    path = q("/v1/cut.mp4", a="film1/0", b="film2/2", pre=0.4, post=0.6)
    status, headers, data = server.request("GET", path)
    assert status == 200 and headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(data)) as box:
        frames = list(box.decode(video=0))
    assert len(frames) == 10 + 15  # 0.4 s and 0.6 s at 25 fps
    # the first frames are film1's first scene, the last ones film2's third (other colours)
    first, last = frames[0].to_ndarray(format="rgb24"), frames[-1].to_ndarray(format="rgb24")
    assert abs(first.astype(int).mean((0, 1)) - last.astype(int).mean((0, 1))).max() > 20
    status, headers, part = server.request("GET", path, headers={"Range": "bytes=100-199"})
    assert status == 206 and part == data[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"


def test_clip_of_a_time_range(server):
    import av

    status, _, data = server.request("GET", q("/v1/assets/film2/clip.mp4", start=0.5, end=1.5))
    assert status == 200
    with av.open(io.BytesIO(data)) as box:
        assert len(list(box.decode(video=0))) == 25


def test_a_playable_asset_is_served_whole_with_byte_ranges(server, served_store):
    status, info = server.json("GET", q("/v1/shots/info", ref="film1/2"))
    assert status == 200
    assert info["play"] == {
        "url": f"/v1/assets/{info['asset_id']}/video#t=2.0,3.0",
        "start": 2.0,
    }
    status, headers, data = server.request("GET", info["play"]["url"].split("#")[0])
    assert status == 200 and headers["content-type"] == "video/mp4"
    source = served_store.parent / "a.mp4"  # film1
    assert data == source.read_bytes()  # the file itself: any time range plays, no transcode
    status, headers, part = server.request(
        "GET", "/v1/assets/film1/video", headers={"Range": "bytes=10-49"}
    )
    assert status == 206 and part == data[10:50]


def test_an_asset_browsers_cannot_play_gets_clips_instead(tmp_path):
    import amberlite
    from amberlite.media.synth import Scene, render
    from amberlite.serve.media import Media

    render(tmp_path / "old.avi", [Scene(frames=5, background=(200, 40, 40))], 64, 36, codec="mpeg4")
    render(tmp_path / "new.mov", [Scene(frames=5, background=(40, 200, 40))], 64, 36)
    store = amberlite.open(tmp_path / "store")
    store.ingest([tmp_path / "old.avi", tmp_path / "new.mov"], progress=False)
    old, new = store.resolve_assets(["old", "new"])
    media = Media(store.ctx)
    mime, why = media.playable(old)
    assert mime is None and "old.avi: browsers do not play its container (avi)" in why
    assert media.playable(new) == ("video/mp4", "")


# -- match cuts ---------------------------------------------------------------------------------
def test_matchcuts_are_the_memoized_pairs_of_amberlite_matchcut(server, served_store):
    status, got = server.json("GET", q("/v1/matchcuts", type="color", top=4, across="true"))
    assert status == 200, got
    # what amberlite.matchcut.match_cut answered in the fixture, before the server started
    want = json.loads((served_store.parent / "pairs.json").read_text())
    assert [[p["ref_a"], p["ref_b"]] for p in got["pairs"]] == want
    assert all(p["asset_a"] != p["asset_b"] for p in got["pairs"])


# -- jobs ---------------------------------------------------------------------------------------
def events(server, job_id: str) -> list[dict]:
    status, headers, data = server.request("GET", f"/v1/jobs/{job_id}/events")
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data:")]


def test_a_job_materializes_and_reports_progress_to_the_end(server):
    status, job = server.json("POST", "/v1/jobs", {"feature": "length", "assets": ["film1"]})
    assert status == 202 and job["state"] == "running", job
    seen = events(server, job["id"])
    assert seen[-1]["state"] == "done", seen[-1]
    assert seen[-1]["progress"]["stored"] == seen[-1]["progress"]["requested"] == 3
    status, listed = server.json("GET", "/v1/jobs")
    assert job["id"] in [j["id"] for j in listed["jobs"]]


def test_a_job_can_be_cancelled_and_keeps_what_it_committed(server):
    status, job = server.json("POST", "/v1/jobs", {"feature": "slow", "assets": ["film2"]})
    assert status == 202, job
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for its first commit
        progress = server.json("GET", f"/v1/jobs/{job['id']}")[1].get("progress") or {}
        if progress.get("stored"):
            break
        time.sleep(0.3)
    seen: list[dict] = []
    stream = threading.Thread(target=lambda: seen.extend(events(server, job["id"])))
    stream.start()  # a client following the job's events holds a stream open...
    frame = server.request("GET", q("/v1/assets/film1/frame.jpg", n=3, w=32))
    assert frame[0] == 200 and stream.is_alive()  # ...while other clients are answered
    status, got = server.json("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200 and got["cancel_requested"] is True
    stream.join(timeout=120)
    assert seen[0]["state"] == "running" and seen[-1]["state"] == "cancelled", seen[-1]
    assert 0 < seen[-1]["progress"]["stored"] < seen[-1]["progress"]["requested"] == 75


# -- annotations and reviews --------------------------------------------------------------------
def test_annotations_add_search_edit_remove_with_history(server):
    note = {"asset": "film2", "start_s": 0.5, "end_s": 0.5, "box": [0.1, 0.2, 0.3, 0.4],
            "text": "Boom mic in frame", "author": "ana"}  # fmt: skip
    status, got = server.json("POST", "/v1/annotations", note)
    assert status == 201 and got["type"] == "comment" and got["box"] == [0.1, 0.2, 0.3, 0.4]
    ann = got["id"]
    status, found = server.json("GET", q("/v1/annotations", q="boom MIC"))
    assert [a["id"] for a in found["annotations"]] == [ann]
    status, got = server.json(
        "PATCH", f"/v1/annotations/{ann}", {"author": "bo", "changes": {"text": "boom gone"}}
    )
    assert status == 200 and got["text"] == "boom gone"
    status, got = server.json("DELETE", f"/v1/annotations/{ann}?author=bo")
    assert status == 200 and got["deleted"] is True
    assert server.json("GET", q("/v1/annotations", q="boom"))[1]["annotations"] == []
    listed = server.json("GET", q("/v1/annotations", q="boom", include_deleted="true"))[1]
    assert [a["id"] for a in listed["annotations"]] == [ann]
    status, got = server.json("GET", f"/v1/annotations/{ann}/history")
    history = got["history"]
    assert [(h["action"], h["author"]) for h in history] == [
        ("add", "ana"),
        ("edit", "bo"),
        ("remove", "bo"),
    ]
    assert history[1]["changes"] == {"text": ["Boom mic in frame", "boom gone"]}


def test_annotation_search_is_ranked_matches_with_the_words_as_a_parameter(server):
    made = []
    for text in ("glove on the floor", "black glove, black glove", "a hat"):
        note = {"asset": "film1", "start_s": 0.2, "end_s": 0.4, "text": text, "author": "ana"}
        made.append(server.json("POST", "/v1/annotations", note)[1]["id"])
    try:
        found = server.json("GET", q("/v1/annotations", q="GLOVE", type="comment"))[1]
        got = [(a["text"], a["relevance"]) for a in found["annotations"]]
        assert [t for t, _ in got] == ["black glove, black glove", "glove on the floor"]
        assert got[0][1] > got[1][1] > 0  # best first (BM25)
        # what a person typed is words, never query text: every word must be found
        for typed in ("glove' OR 'x", "glove) OR (TRUE", "$q", "hat OR glove"):
            status, found = server.json("GET", q("/v1/annotations", q=typed))
            assert (status, found["annotations"]) == (200, [])
        window = q("/v1/annotations", q="glove", asset="film1", start_s=0.5, end_s=1.0)
        assert server.json("GET", window)[1]["annotations"] == []
        status, got = server.json("GET", q("/v1/annotations", q="glove", type="nope"))
        assert status == 400 and "unknown annotation type 'nope'" in got["error"]
    finally:
        for i in made:
            server.json("DELETE", f"/v1/annotations/{i}?author=ana")


def test_a_review_is_a_comment_deciding_again_edits_it_and_export_follows(server):
    from amberlite.serve.export import otio_events

    pair = {"a": "film2/0", "b": "film1/2", "author": "ana"}
    status, first = server.json("POST", "/v1/matchcuts/review", {**pair, "decision": "reject"})
    assert status == 200 and first["label"] == "match-cut rejected"
    assert first["text"] == "film2/0 -> film1/2" and first["type"] == "comment"
    edl = server.request("GET", "/v1/matchcuts/export.edl")[2].decode()
    assert "00:00:02:00 00:00:03:00" not in edl
    status, again = server.json("POST", "/v1/matchcuts/review", {**pair, "decision": "accept"})
    assert again["id"] == first["id"] and again["label"] == "match-cut accepted"
    history = server.json("GET", f"/v1/annotations/{first['id']}/history")[1]["history"]
    assert [h["action"] for h in history] == ["add", "edit"]
    # A: film2's first shot [0, 1) s, its last second; B: film1's third shot from 2 s, 1 s
    edl = server.request("GET", "/v1/matchcuts/export.edl")[2].decode()
    assert re.search(r"FILM2 +V +C +00:00:00:00 00:00:01:00 01:00:\d\d:\d\d", edl)
    assert re.search(r"FILM1 +V +C +00:00:02:00 00:00:03:00 01:00:\d\d:\d\d", edl)
    otio = server.request("GET", "/v1/matchcuts/export.otio")[2].decode()
    events = otio_events(otio)
    k = [n for n, _, _ in events].index(next(n for n, s, _ in events if n.endswith("A: film2")))
    assert events[k][1:] == (0.0, 1.0) and events[k + 1][1:] == (2.0, 1.0)
    reviews = server.json("GET", "/v1/matchcuts/reviews")[1]["reviews"]
    assert {"a": "film2/0", "b": "film1/2", "decision": "accept"}.items() <= next(
        r for r in reviews if r["id"] == first["id"]
    ).items()


# -- bad requests -------------------------------------------------------------------------------
BAD = [
    ("POST", "/v1/query", {"aql": "SELEC ref FROM shots"}, 400, "line 1, column 1"),
    ("POST", "/v1/query", {"aql": "SELECT nosuch FROM shots"}, 400, "nosuch"),
    ("POST", "/v1/query", {"aql": "SELECT ref FROM shots", "limit": 10**9}, 422, "limit"),
    ("POST", "/v1/query", {"aql": "SELECT ref FROM shots WHERE index = $i"}, 400, "$i"),
    ("POST", "/v1/query", {"aql": 3}, 422, "aql"),
    ("POST", "/v1/query", {"aql": "SELECT 1 FROM shots", "params": {"x": [1]}}, 400, "'x'"),
    ("GET", "/v1/assets/nosuch/frame.jpg?t=0", None, 404, "nosuch"),
    ("GET", "/v1/assets/..%2F..%2Fcatalog.duckdb/frame.jpg?t=0", None, 404, "Not Found"),
    ("GET", "/v1/assets/..%2E/frame.jpg?t=0", None, 404, "unknown asset"),
    ("GET", "/v1/shots/strip.jpg?ref=../../catalog.duckdb", None, 404, "no shot"),
    ("GET", "/v1/assets/film1/frame.jpg?t=999", None, 400, "outside the video"),
    ("GET", "/v1/assets/film1/frame.jpg?n=-1", None, 400, "outside film1"),
    ("GET", "/v1/assets/film1/frame.jpg?t=1&w=100000", None, 400, "between 1 and"),
    ("GET", "/v1/assets/film1/clip.mp4?start=0&end=100", None, 400, "at most 30 s"),
    ("GET", "/v1/assets/nope/video", None, 404, "nope"),
    ("GET", "/v1/assets/..%2F..%2Fcatalog.duckdb/video", None, 404, "Not Found"),
    ("GET", "/v1/shots/strip.jpg?ref=film1/99", None, 404, "no shot"),
    ("GET", "/v1/jobs/..%2F..%2Fcatalog", None, 404, "Not Found"),
    ("GET", "/v1/jobs/....catalog", None, 404, "16 hex digits"),
    ("GET", "/v1/jobs/0123456789abcdef", None, 404, "no job"),
    ("POST", "/v1/jobs", {"feature": "nosuch"}, 400, "nosuch"),
    ("GET", "/v1/matchcuts?type=nosuch", None, 404, "nosuch"),
    ("GET", "/v1/nosuch", None, 404, "Not Found"),
    ("GET", "/v1/annotations/0123456789abcdef", None, 404, "no annotation"),
    ("GET", "/v1/annotations/..%2F..%2Fcatalog", None, 404, "Not Found"),
    ("GET", "/v1/annotations/..secret", None, 400, "id"),
    (
        "POST",
        "/v1/annotations",
        {"asset": "film1", "start_s": 0, "end_s": 0.1, "author": "a", "box": [0.5, 0.5, 1.5, 0.6]},
        400,
        "box",
    ),
    (
        "POST",
        "/v1/annotations",
        {"asset": "nosuch", "start_s": 0, "end_s": 0.1, "author": "a"},
        400,
        "nosuch",
    ),
    ("POST", "/v1/annotations", {"asset": "film1", "start_s": 0, "end_s": 0.1}, 422, "author"),
    (
        "POST",
        "/v1/matchcuts/review",
        {"a": "film1/0", "b": "film2/0", "decision": "maybe", "author": "a"},
        422,
        "decision",
    ),
]


@pytest.mark.parametrize("method, path, body, status, fragment", BAD, ids=[b[1] for b in BAD])
def test_bad_requests_get_a_clear_json_4xx(server, method, path, body, status, fragment):
    got_status, got = server.json(method, path, body)
    assert got_status == status, got
    assert fragment in got["error"] and "Traceback" not in got["error"]


def test_oversized_and_malformed_bodies(server):
    big = json.dumps({"aql": "SELECT ref FROM shots", "pad": "x" * (2 << 20)}).encode()
    status, _, data = server.request("POST", "/v1/query", raw=big)
    assert status == 413 and b"request body over" in data
    status, _, data = server.request("POST", "/v1/query", raw=b"{not json")
    assert status == 422 and json.loads(data)["kind"] == "validation"


def test_a_foreign_host_header_is_refused_on_localhost(server):
    status, got = server.json("GET", "/v1/status", headers={"Host": "evil.example:8765"})
    assert status == 400 and "Host" in got["error"]


def test_token_and_read_only(guarded):
    body = {"aql": "SELECT ref FROM shots LIMIT 1"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "amberlite_token=nope"}):
        status, got = guarded.json("POST", "/v1/query", body, headers=headers)
        assert status == 401 and "token" in got["error"]
    auth = {"Authorization": "Bearer s3cret"}
    assert guarded.json("POST", "/v1/query", body, headers=auth)[0] == 200
    assert (
        guarded.json("POST", "/v1/query", body, headers={"Cookie": "amberlite_token=s3cret"})[0]
        == 200
    )
    status, got = guarded.json("POST", "/v1/jobs", {"feature": "slow"}, headers=auth)
    assert status == 403 and "read-only" in got["error"]
    # a query that would compute is refused on a read-only server, naming the feature
    status, got = guarded.json(
        "POST", "/v1/query", {"aql": "SELECT slow FROM frames LIMIT 1"}, headers=auth
    )
    assert status == 409 and "slow" in got["error"] and "read-only" in got["error"]
    # the page itself loads, and sets the token cookie when opened with it
    status, headers, _ = guarded.request("GET", "/?token=s3cret")
    assert status == 200 and "amberlite_token=s3cret" in headers.get("set-cookie", "")


def test_binding_beyond_localhost_needs_a_token(served_store):
    out = subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(served_store), "serve",
         "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120, env=Server.env(),
    )  # fmt: skip
    assert out.returncode == 2 and "without a token" in out.stderr
    assert "Traceback" not in out.stderr


def test_openapi_lists_the_versioned_endpoints(server):
    status, spec = server.json("GET", "/v1/openapi.json")
    assert status == 200
    assert {"/v1/query", "/v1/explain", "/v1/cut.mp4", "/v1/jobs"} <= set(spec["paths"])


def test_a_clip_across_assets_of_other_shapes_is_letterboxed(tmp_path):
    import av
    import numpy as np

    import amberlite
    from amberlite.media.synth import Scene, render
    from amberlite.serve.media import Media, Span

    render(tmp_path / "wide.mp4", [Scene(frames=5, background=(200, 40, 40))], 64, 36)
    render(tmp_path / "tall.mp4", [Scene(frames=5, background=(40, 200, 40))], 36, 64)
    store = amberlite.open(tmp_path / "store")
    store.ingest([tmp_path / "wide.mp4", tmp_path / "tall.mp4"], progress=False)
    wide, tall = store.resolve_assets(["wide", "tall"])
    path = Media(store.ctx).clip([Span(wide, 0, 5), Span(tall, 0, 5)])
    with av.open(str(path)) as box:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in box.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape == frames[-1].shape == (36, 64, 3)
    last = frames[-1]
    assert np.abs(last[:, :8]).max() < 40  # black bars beside the tall picture
    assert last[:, 28:36, 1].mean() > 120  # the green picture itself, not stretched away

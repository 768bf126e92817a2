"""`amberlite serve` over real HTTP: AQL (JSON and Arrow), frames, strips, clips and cuts,
match cuts, jobs, and every kind of bad request answered 4xx with a JSON error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
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
    status, got = server.json("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200 and got["cancel_requested"] is True
    final = events(server, job["id"])[-1]
    assert final["state"] == "cancelled", final
    assert 0 < final["progress"]["stored"] < final["progress"]["requested"] == 75


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
    ("GET", "/v1/shots/strip.jpg?ref=film1/99", None, 404, "no shot"),
    ("GET", "/v1/jobs/..%2F..%2Fcatalog", None, 404, "Not Found"),
    ("GET", "/v1/jobs/....catalog", None, 404, "16 hex digits"),
    ("GET", "/v1/jobs/0123456789abcdef", None, 404, "no job"),
    ("POST", "/v1/jobs", {"feature": "nosuch"}, 400, "nosuch"),
    ("GET", "/v1/matchcuts?type=nosuch", None, 404, "nosuch"),
    ("GET", "/v1/nosuch", None, 404, "Not Found"),
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

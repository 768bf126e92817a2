"""Shared by the server tests: one store with match cuts computed, served by real
``amberlite serve`` processes on localhost (started once per test session)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import small_clip

SLOW_DEFS = '''
import pyarrow as pa
from amberlite import feature


@feature(entity="frame", output=pa.int64(), batch=2, parallel="serial")
def slow(frames):
    """n, slowly (0.2 s a frame): long enough to cancel."""
    import time

    time.sleep(0.2 * len(frames))
    return [f.n for f in frames]


@feature(entity="shot", output=pa.int64())
def length(shot):
    """Frames in the shot."""
    return shot.end_frame - shot.start_frame
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``amberlite serve`` process and a tiny HTTP client for it."""

    def __init__(self, store: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = self.env()
        cmd = [sys.executable, "-m", "amberlite.cli", "--store", str(store), "serve"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.1)
        raise RuntimeError("server did not start in 60 s")

    @staticmethod
    def env() -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.pop("AMBERLITE_TOKEN", None)
        return env

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method: str, path: str, body: object = None, **kw) -> tuple[int, dict]:
        status, headers, data = self.request(method, path, body, **kw)
        assert headers.get("content-type", "").startswith("application/json"), (status, data)
        return status, json.loads(data)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def served_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 3-shot clips (film1, film2) with shots and colour match cuts computed, and the
    `slow` and `length` features applied."""
    import amberlite
    from amberlite.matchcut import match_cut

    d = tmp_path_factory.mktemp("served")
    clips = [small_clip(d / "a.mp4", 0, frames=25), small_clip(d / "b.mp4", 1, frames=25)]
    store = amberlite.open(d / "store")
    store.ingest(clips, aliases=["film1", "film2"], progress=False)
    (d / "defs.py").write_text(SLOW_DEFS)
    store.apply(d / "defs.py")
    pairs = match_cut(store, None, "color", 4, across_only=True, progress=False)
    (d / "pairs.json").write_text(
        json.dumps([list(p) for p in zip(pairs["ref_a"], pairs["ref_b"])])
    )
    return d / "store"


@pytest.fixture(scope="session")
def server(served_store: Path):
    s = Server(served_store)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def guarded(served_store: Path):
    """The same store served read-only behind a token, by two worker processes."""
    s = Server(served_store, "--token", "s3cret", "--read-only", "--workers", "2")
    yield s
    s.stop()

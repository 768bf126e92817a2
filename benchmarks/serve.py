"""Load on `amberlite serve`: concurrent clients mixing warm AQL, frame JPEGs and annotation
writes while another process commits a materialization into the same store.

A store of three generated clips (320x180, 3 shots each, shots stored) is served by a real
`amberlite serve` process on localhost. ``--clients`` threads (keep-alive HTTP connections)
each loop for ``--seconds``: 50% ``POST /v1/query`` (a warm SELECT of one asset's shots with
a ``$film`` parameter: each film's query is asked once before the load), 30% ``GET
/v1/assets/{film}/frame.jpg`` (a random frame, 160 wide), 20% ``POST /v1/annotations`` (a
comment with a unique text). Meanwhile ``amberlite
materialize`` runs in its own process over a slow frame feature, committing every few
seconds. Afterwards: requests/s, p50 / p99 latency per endpoint, errors, and the annotations
checked against the writes that answered 201 (none lost, none duplicated).

Peer, in the same run: the same AQL through the Python API (``store.query`` with the same
parameters), one thread, warm, while the load runs — and once more after it, quiet.

    python -m benchmarks.serve [--seconds 60] [--clients 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

AQL = "SELECT ref, start_s, end_s FROM shots WHERE asset = $film ORDER BY index"
FILMS = ("film1", "film2", "film3")
SLOW = '''
import pyarrow as pa
from amberlite import feature


@feature(entity="frame", output=pa.int64(), batch=8, parallel="serial")
def busy(frames):
    """n, after 40 ms of sleep per frame: a materialization that commits while we load."""
    import time

    time.sleep(0.04 * len(frames))
    return [f.n for f in frames]
'''


def make_store(root: Path) -> Path:
    import amberlite
    from amberlite.media.synth import Scene, render

    clips = []
    for k in range(3):
        path = root / f"clip{k}.mp4"
        scenes = [
            Scene(frames=40, background=(60 * i + 20 * k, 90, 200 - 50 * i)) for i in range(3)
        ]
        render(path, scenes, 320, 180)
        clips.append(path)
    store = amberlite.open(root / "store")
    store.ingest(clips, aliases=list(FILMS), progress=False)
    (root / "slow.py").write_text(SLOW)
    store.apply(root / "slow.py")
    store.materialize("shots", progress=False)
    return root / "store"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, workers: int) -> subprocess.Popen:
    import socket

    cmd = [sys.executable, "-m", "amberlite.cli", "--store", str(store), "serve"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


class Client(threading.Thread):
    def __init__(self, k: int, port: int, until: float, durations: dict, cold: bool = False):
        super().__init__(daemon=True)
        self.k, self.port, self.until, self.cold = k, port, until, cold
        # (endpoint, seconds, status, start): endpoint query-hit | query-miss | frame | annotate
        self.samples: list[tuple[str, float, int, float]] = []
        self.written: list[str] = []
        self.durations = durations

    def run(self) -> None:
        rng = random.Random(self.k)
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        i = 0
        while time.monotonic() < self.until:
            i += 1
            film = rng.choice(FILMS)
            r = rng.random()
            if r < 0.5:
                name, method, path = "query", "POST", "/v1/query"
                body = {"aql": AQL, "params": {"film": film}}
                if self.cold:  # another `limit` each time: the server's cache cannot answer
                    body["limit"] = rng.randrange(10, 10_000)
            elif r < 0.8:
                name, method = "frame", "GET"
                path = f"/v1/assets/{film}/frame.jpg?n={rng.randrange(120)}&w=160"
                body = None
            else:
                name, method, path = "annotate", "POST", "/v1/annotations"
                text = f"bench-{self.k}-{i}" if self.k >= 0 else f"warm-{i}"
                t = round(rng.uniform(0, 4.5), 3)
                body = {"asset": film, "start_s": t, "end_s": t, "text": text,
                        "box": [0.1, 0.1, 0.4, 0.4], "author": f"client{self.k}"}  # fmt: skip
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            t0 = time.perf_counter()
            try:
                con.request(method, path, body=data, headers=headers)
                resp = con.getresponse()
                resp.read()
                status = resp.status
                if name == "query":  # the server's answer cache: hit or miss
                    name = f"query-{resp.getheader('X-Amberlite-Cache', 'miss')}"
            except (OSError, http.client.HTTPException):
                status = 0
                con.close()
                con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.samples.append((name, time.perf_counter() - t0, status, t0))
            if name == "annotate" and status == 201:
                self.written.append(body["text"])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def api_peer(store_path: Path, until: float) -> list[float]:
    """The same AQL through the Python API, one thread, warm, until ``until``."""
    import amberlite

    store = amberlite.open(store_path)
    store.query(AQL, {"film": "film1"})  # warm
    times, k = [], 0
    while time.monotonic() < until:
        t0 = time.perf_counter()
        store.query(AQL, {"film": FILMS[k % 3]})
        times.append(time.perf_counter() - t0)
        k += 1
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument(
        "--cold", action="store_true", help="queries the server cannot answer from its cache"
    )
    ap.add_argument(
        "--no-materialize", action="store_true", help="no materialization in another process"
    )
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="amberlite-serve-bench-"))
    print(f"store: {root} (load average at start: {os.getloadavg()[0]:.2f})", file=sys.stderr)
    store = make_store(root)
    port = free_port()
    server = start_server(store, port, args.workers)
    work = ["materialize", "busy"] if not args.no_materialize else ["status"]
    materialize = subprocess.Popen(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store), *work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # warm the server: each film's query once (a warm query is the target), then a mix
        for film in FILMS:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            body = json.dumps({"aql": AQL, "params": {"film": film}})
            con.request(
                "POST", "/v1/query", body=body, headers={"Content-Type": "application/json"}
            )
            con.getresponse().read()
            con.close()
        warm = Client(-1, port, time.monotonic() + 3, {})
        warm.run()
        until = time.monotonic() + args.seconds
        clients = [Client(k, port, until, {}, args.cold) for k in range(args.clients)]
        started = time.monotonic()
        for c in clients:
            c.start()
        peer_loaded = api_peer(store, until)
        for c in clients:
            c.join()
        wall = time.monotonic() - started
        mat_running = materialize.poll() is None
        peer_quiet = None
        if materialize.poll() is None:
            materialize.terminate()
        materialize.wait()
        server.terminate()
        server.wait(timeout=30)
        peer_quiet = api_peer(store, time.monotonic() + 5)
        report(clients, wall, peer_loaded, peer_quiet, store, mat_running, args)
    finally:
        for p in (server, materialize):
            if p.poll() is None:
                p.kill()


def report(clients, wall, peer_loaded, peer_quiet, store_path, mat_running, args) -> None:
    import amberlite

    samples = [s for c in clients for s in c.samples]
    state = "still running" if mat_running else "ended"
    print(
        f"\n{args.clients} clients, {args.workers} server process(es), {wall:.1f} s, load "
        f"average now {os.getloadavg()[0]:.2f}; materialization {state} during the load"
    )
    print("| endpoint | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    started = min((s[3] for s in samples), default=0.0)
    groups = {
        "query": lambda n: n.startswith("query-"),
        "query, answer cached": lambda n: n == "query-hit",
        "query, answer read": lambda n: n == "query-miss",
        "frame": lambda n: n == "frame",
        "annotate": lambda n: n == "annotate",
    }
    for name, match in groups.items():
        mine = [s for s in samples if match(s[0])]
        ok = [t for _, t, st, _ in mine if 200 <= st < 300]
        errors = len(mine) - len(ok)
        if ok:
            print(f"| {name} | {len(mine)} | {len(mine) / wall:.1f} | {1000 * pct(ok, 50):.1f} | "
                  f"{1000 * pct(ok, 99):.1f} | {errors} |")  # fmt: skip
    slow = sorted((s for s in samples if s[0].startswith("query-")), key=lambda s: -s[1])[:5]
    print("slowest queries: " + ", ".join(
        f"{1000 * t:.0f} ms ({n[6:]}, at +{t0 - started:.1f} s)" for n, t, _, t0 in slow
    ))  # fmt: skip
    total_errors = sum(1 for s in samples if not 200 <= s[2] < 300)
    print(f"| all | {len(samples)} | {len(samples) / wall:.1f} | | | {total_errors} |")
    for label, times in (("under the load", peer_loaded), ("quiet, after", peer_quiet)):
        print(f"| Python API store.query ({label}, 1 thread) | {len(times)} | "
              f"{len(times) / (sum(times) or 1):.1f} | {1000 * pct(times, 50):.1f} | "
              f"{1000 * pct(times, 99):.1f} | 0 |")  # fmt: skip
    http_p50 = pct([t for n, t, st, _ in samples if n.startswith("query-") and st == 200], 50)
    print(f"\nHTTP query p50 / Python API p50 under the same load: "
          f"{http_p50 / pct(peer_loaded, 50):.2f}x")  # fmt: skip
    written = [t for c in clients for t in c.written]
    store = amberlite.open(store_path)
    stored = [a["text"] for a in store.annotations.list("comment")
              if (a["text"] or "").startswith("bench-")]  # fmt: skip
    lost = set(written) - set(stored)
    dup = len(stored) - len(set(stored))
    print(f"annotations: {len(written)} answered 201, {len(stored)} stored, "
          f"{len(lost)} lost, {dup} duplicated")  # fmt: skip


if __name__ == "__main__":
    main()

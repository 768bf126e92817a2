"""The Ray executor on a real local Ray cluster: same values and failures as local, a worker
killed mid-run commits each value once, actors load once, GPU resources are scheduled, and
the CLI drives a separately started cluster by address."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
import ray  # a required dependency: a broken install fails these tests instead of skipping them

import amberlite

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
VENV_BIN = Path(sys.executable).parent

DEFS = """
import os
from pathlib import Path
import functools
import pyarrow as pa
from amberlite import Decode, feature

MARKER = Path({marker!r})

@feature(entity="frame", output=pa.float32(), decode=Decode(size=(32, 18)), batch=8)
def frame_luma(frames):
    return [float(f.image().mean()) for f in frames]

@feature(entity="shot", output=pa.int64())
def shot_len(shot):
    if shot.asset.alias == "clip_b" and shot.index == 1:
        raise ValueError("second shot of clip_b refuses")
    return shot.frame_count

@feature(entity="frame", output=pa.int64(), batch=10)
def crashy(frames):
    try:  # the first attempt of the first batch to get here kills its worker process
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return [f.n for f in frames]
    os._exit(1)

LOADS = []

@functools.cache
def model():
    LOADS.append(os.getpid())
    return 1000

@feature(entity="frame", output=pa.string(), batch=10, resources={{"actors": 1}})
def served(frames):
    m = model()
    return [f"{{os.getpid()}}:{{len(LOADS)}}:{{m}}" for f in frames]

@feature(entity="asset", output=pa.int64(), resources={{"gpu": 1}})
def gpu_ids(asset):
    import ray
    from amberlite.run.ray_executor import torch_device
    assert torch_device() in ("cpu", "cuda")
    return len(ray.get_gpu_ids())
"""


@pytest.fixture(scope="session")
def ray_cluster():
    """One in-process local cluster for the session: 2 CPUs and one logical GPU."""
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture
def ray_exe(ray_cluster):
    from amberlite.run.ray_executor import RayExecutor

    return RayExecutor(max_retries=2)


def _store(root: Path, media_dir: Path, defs_path: Path):
    store = amberlite.open(root)
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], progress=False)
    store.apply(defs_path)
    return store


@pytest.fixture
def defs_path(tmp_path: Path) -> Path:
    path = tmp_path / "features.py"
    path.write_text(DEFS.format(marker=str(tmp_path / "crashed.marker")))
    return path


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort("id")


def test_same_values_and_failures_as_local(ray_exe, media_dir, tmp_path, defs_path):
    local = _store(tmp_path / "local", media_dir, defs_path)
    remote = _store(tmp_path / "remote", media_dir, defs_path)
    driver_writes = []  # observe (not replace) the driver's own Parquet writes
    write_aside = remote.memo.write_aside
    remote.memo.write_aside = lambda table: (
        driver_writes.append(table.num_rows) or write_aside(table)
    )
    for name in ("frame_luma", "shot_len"):
        a = local.materialize(name, progress=False)
        b = remote.materialize(name, executor=ray_exe, progress=False)
        assert (a.computed, a.failed) == (b.computed, b.failed)
        assert _sorted(local.get(name, compute=False)).equals(
            _sorted(remote.get(name, compute=False))
        )
    assert remote.get("frame_luma", compute=False).height == 100
    cols = ["feature", "version", "entity_id", "error", "attempts"]
    fl, fr = local.failures().select(cols), remote.failures().select(cols)
    assert fr.height == 1 and "second shot of clip_b refuses" in fr["error"][0]
    assert fl.equals(fr)
    # The shots segmenter ran through Ray too and made the same entities.
    assert local.entities("shot")["id"].to_list() == (remote.entities("shot")["id"].to_list())
    # Workers wrote the value batches themselves; only the segmenter's spans came back (one
    # row per asset; batches that finish together are committed in one file).
    assert sum(driver_writes) == 2
    runs = remote.status()["runs"]
    assert set(runs["executor"]) == {"ray"}
    assert not list((tmp_path / "remote" / "tmp").glob("*.parquet"))  # every aside committed


def test_worker_killed_mid_run_commits_each_value_once(ray_exe, media_dir, tmp_path, defs_path):
    store = _store(tmp_path / "s", media_dir, defs_path)
    stats = store.materialize("crashy", executor=ray_exe, progress=False)
    assert (tmp_path / "crashed.marker").exists()  # a worker really died
    assert (stats.computed, stats.failed) == (100, 0)
    values = store.get("crashy", compute=False)
    assert values.height == 100 and values["id"].n_unique() == 100
    assert values["crashy"].to_list() == [int(e.rsplit("/f", 1)[1]) for e in values["id"]]
    rows = store.catalog.query("SELECT sum(rows) FROM memo_files WHERE feature = 'crashy'")
    assert rows[0][0] == 100
    assert store.catalog.query("SELECT count(*) FROM claims")[0][0] == 0


def test_actor_loads_model_once_and_serves_many_batches(ray_exe, media_dir, tmp_path, defs_path):
    store = _store(tmp_path / "s", media_dir, defs_path)
    store.materialize("served", "clip_a", executor=ray_exe, progress=False)
    store.materialize("served", "clip_b", executor=ray_exe, progress=False)
    values = set(store.get("served", compute=False)["served"])
    assert len(values) == 1  # one actor, one load, ten batches over two materializations
    pid, loads, m = values.pop().split(":")
    assert int(pid) != os.getpid() and loads == "1" and m == "1000"
    files = store.catalog.query("SELECT count(*) FROM memo_files WHERE feature = 'served'")
    assert files[0][0] == 10
    ray_exe.close()


def test_gpu_resource_is_scheduled(ray_exe, media_dir, tmp_path, defs_path):
    store = _store(tmp_path / "s", media_dir, defs_path)
    assert store.get("gpu_ids", executor=ray_exe, progress=False)["gpu_ids"].to_list() == [1, 1]


def test_bad_resources_are_a_definition_error(ray_exe, media_dir, tmp_path, defs_path):
    from amberlite.errors import DefinitionError

    path = tmp_path / "bad.py"
    path.write_text(
        "import pyarrow as pa\nfrom amberlite import feature\n"
        "@feature(entity='asset', output=pa.int64(), resources={'actors': 0.5})\n"
        "def half(asset):\n    return 1\n"
    )
    store = _store(tmp_path / "s", media_dir, path)
    with pytest.raises(DefinitionError, match="actors"):
        store.materialize("half", executor=ray_exe, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_on_a_separately_started_cluster(media_dir, tmp_path, defs_path):
    """``ray start --head`` in its own process; the CLI connects with --address. The cluster
    is stopped by signalling the process this test started (``ray stop`` would stop every
    Ray cluster on the machine, including other users')."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="amr", dir="/tmp")  # short: Ray's socket paths
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--block",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        store = _store(tmp_path / "s", media_dir, defs_path)
        cmd = [
            str(VENV_BIN / "amberlite"),
            "--store",
            str(store.root),
            "materialize",
            "frame_luma",
            "--executor",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
        ]
        deadline = time.monotonic() + 60
        while True:  # the head takes a few seconds to accept drivers
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "frame_luma@1: 100 requested, 0 already stored, 100 computed" in out.stdout
        runs = amberlite.open(store.root).status()["runs"]
        assert "ray" in set(runs["executor"])
    finally:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def test_dataset_to_ray_reads_the_same_files(ray_cluster, media_dir, tmp_path, defs_path):
    store = _store(tmp_path / "s", media_dir, defs_path)
    ds = store.dataset("frame_luma", ["clip_b"])
    rows = ds.to_ray().take_all()
    assert len(rows) == 40 and set(rows[0]) == {"entity_id", "asset_id", "frame_luma"}
    expect = store.get("frame_luma", "clip_b", compute=False)
    assert sorted(r["entity_id"] for r in rows) == sorted(expect["id"])


def test_unreachable_address_is_a_clear_error(tmp_path):
    amberlite.open(tmp_path / "s")  # read-only commands need an existing store
    port = _free_port()  # nothing listens there
    out = subprocess.run(
        [str(VENV_BIN / "amberlite"), "--store", str(tmp_path / "s"), "materialize", "shots",
         "--executor", "ray", "--address", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    assert out.returncode == 2 and "cannot reach a Ray cluster" in out.stderr
    assert "Traceback" not in out.stderr


def test_model_loads_once_per_ray_actor(ray_exe, media_dir, tmp_path):
    from test_models import loads, write_defs, write_models

    write_models(tmp_path, 2.0)
    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], progress=False)
    store.apply(write_defs(tmp_path))
    store.materialize("scaled_luma", "clip_a", executor=ray_exe, progress=False)
    store.materialize("scaled_luma", "clip_b", executor=ray_exe, progress=False)
    batches = store.catalog.query("SELECT count(*) FROM memo_files WHERE feature = 'scaled_luma'")
    pids = loads(tmp_path)
    # one load per actor (2 CPUs: 2 actors), kept across batches and materializations
    assert len(pids) == len(set(pids)) and 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert batches[0][0] >= 13 > len(pids)  # 60 + 40 frames in batches of (at most) 8
    assert store.get("scaled_luma", compute=False).height == 100
    ray_exe.close()


def test_learned_segmenter_runs_in_a_ray_actor_with_a_gpu(ray_exe, media_dir, tmp_path):
    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_b.mp4"], progress=False)  # 40 frames: one model window
    store.set_segmenter("shot", "transnetv2")
    stats = store.materialize("transnetv2", executor=ray_exe, progress=False)
    assert stats.computed == 1 and stats.failed == 0
    assert list(ray_exe._pool_gpus.values()) == [1]  # one actor holding the (logical) GPU
    shots = store.entities("shot", compute=False)
    assert shots["start_frame"].to_list() == [0, 20]
    assert all(i.endswith("~transnetv2@1") for i in shots["id"])
    ray_exe.close()

"""CLI start-up: wall time and peak memory of short ``amberlite`` commands, each a fresh process.

Rows: ``amberlite --help``, ``amberlite --version``, ``amberlite query --help`` and a warm
one-line query (``SELECT id FROM shots LIMIT 1`` on a small generated store whose shots are
already computed). Peers, in the same run: the bare interpreter (``python -c pass``),
``python -c "import duckdb; duckdb.sql('select 1')"`` and PySceneDetect's ``scenedetect --help``
(the ``bench`` extra). Reported: median wall seconds and median peak RSS (``os.wait4``'s
rusage of that one child) over ``--repeat`` runs, and the ratio to each peer. Targets:
``--help`` and ``--version`` < 0.3 s; the warm one-line query < 0.5 s.

    python -m benchmarks.startup [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = "SELECT id FROM shots LIMIT 1"
TARGETS = {"amberlite --help": 0.3, "amberlite --version": 0.3, "amberlite query (warm)": 0.5}


def command(name: str, module: str) -> list[str]:
    """The console script next to this interpreter, else ``python -m module``."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run; the command must succeed.

    Linux carries the forking process's peak RSS into the child's ``ru_maxrss``, so the child
    is started by GNU ``time`` (a few MiB) when there is one; otherwise by this process,
    which imports nothing heavy (its own ~10 MiB is then a floor of the figure).
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        timed = [TIME, "-f", "%M", "-o", str(report), *argv] if TIME else argv
        with open(Path(tmp) / "err", "w+b") as err:
            t = time.perf_counter()
            proc = subprocess.Popen(timed, stdout=subprocess.DEVNULL, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
        kib = int(report.read_text().split()[-1]) if TIME else usage.ru_maxrss
    return wall, kib / 1024


def measure(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    run_once(argv, env)  # warm the page cache and any on-disk cache first
    runs = [run_once(argv, env) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), statistics.median(m for _, m in runs)


STORE_SCRIPT = """
import sys
from pathlib import Path

import amberlite
from amberlite.media.synth import Scene, render

root = Path(sys.argv[1])
palette = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40)]
clips = []
for seed, scenes in ((0, 3), (1, 2)):
    path = root / f"clip{seed}.mp4"
    scenes = [
        Scene(
            frames=20,
            background=palette[(i + seed) % len(palette)],
            position=(0.3 + 0.2 * i, 0.5),
            radius=0.25,
            seed=seed * 10 + i,
        )
        for i in range(scenes)
    ]
    render(path, scenes, width=160, height=90, seed=seed)
    clips.append(path)
store = amberlite.open(root / "store")
store.ingest(clips, progress=False)
store.materialize("shots")
"""


def small_store(root: Path, env: dict[str, str]) -> Path:
    """Two short generated clips (160x90, hard cuts), ingested, shots materialized; built in
    a child process so that this one stays small (see ``run_once``)."""
    subprocess.run([sys.executable, "-c", STORE_SCRIPT, str(root)], check=True, env=env)
    return root / "store"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    amberlite = command("amberlite", "amberlite.cli")
    root = Path(tempfile.mkdtemp(prefix="amberlite-startup-"))
    store = small_store(root, env)
    rows: dict[str, list[str]] = {
        "amberlite --help": [*amberlite, "--help"],
        "amberlite --version": [*amberlite, "--version"],
        "amberlite query --help": [*amberlite, "query", "--help"],
        "amberlite query (warm)": [*amberlite, "--store", str(store), "query", QUERY],
        "python -c pass": [sys.executable, "-c", "pass"],
        "duckdb select 1": [sys.executable, "-c", "import duckdb; duckdb.sql('select 1')"],
    }
    scenedetect = Path(sys.executable).parent / "scenedetect"
    if scenedetect.exists() or shutil.which("scenedetect"):
        rows["scenedetect --help"] = [str(scenedetect) if scenedetect.exists() else "scenedetect"]
        rows["scenedetect --help"].append("--help")
    else:
        print("!" * 72)
        print("!! PEER MISSING: scenedetect is not installed (pip install '.[bench]')")
        print("!" * 72)
    print(f"amberlite runs as: {' '.join(amberlite)}; {args.repeat} runs each (median)")
    if not TIME:
        print("no GNU time: peak RSS from os.wait4 (this process's ~10 MiB is a floor)")
    results = {}
    for name, argv in rows.items():
        try:
            results[name] = measure(argv, args.repeat, env)
        except (OSError, RuntimeError) as e:
            print(f"!! {name} could not be run: {e}")
    duck = results.get("duckdb select 1")
    scene = results.get("scenedetect --help")
    print()
    print("| command | wall s | peak RSS MiB | / duckdb | / scenedetect | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (wall, rss) in results.items():
        vs_duck = f"{wall / duck[0]:.2f}x" if duck else "n/a"
        vs_scene = f"{wall / scene[0]:.2f}x" if scene else "n/a"
        target = TARGETS.get(name)
        verdict = f"< {target} s: {'met' if wall < target else 'NOT met'}" if target else ""
        print(f"| {name} | {wall:.3f} | {rss:.0f} | {vs_duck} | {vs_scene} | {verdict} |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

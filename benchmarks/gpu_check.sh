#!/usr/bin/env bash
# GPU check (under 10 minutes): a Ray cluster with num_gpus=1, the learned shot segmenter
# (transnetv2) over a few generated 1080p clips, and a TorchScript model feature over their
# frames; prints frames/s of each next to pure PyAV decode of the same files (the
# decode-bound limit, measured in the same run) and the GPU's utilisation sampled with
# nvidia-smi. Without a GPU (or nvidia-smi) it runs the same path on CPU and says so.
#
#   bash benchmarks/gpu_check.sh                      # 3 clips x 40 s at 1080p (+ a warm-up)
#   CLIPS=1 SECONDS_PER_CLIP=2 bash benchmarks/gpu_check.sh   # the CPU-fallback smoke run
#
# Needs amberlite installed (make venv) or PYTHON pointing at a Python that imports it.
set -euo pipefail
PYTHON=${PYTHON:-python3}
CLIPS=${CLIPS:-3}
SECONDS_PER_CLIP=${SECONDS_PER_CLIP:-40}
WORK=${WORK:-$(mktemp -d /tmp/amberlite-gpu-check.XXXX)}
export RAY_AUTH_MODE=disabled CLIPS SECONDS_PER_CLIP WORK
mkdir -p "$WORK"

SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 \
    >"$WORK/gpu_util.csv" &
  SAMPLER=$!
  trap 'kill $SAMPLER 2>/dev/null || true' EXIT
else
  echo "no GPU (nvidia-smi absent or sees none): CPU fallback, no utilisation sampled"
fi

"$PYTHON" - <<'EOF'
import os, sys, time, warnings
from pathlib import Path

import av
import numpy as np
import ray
import torch

import amberlite
from amberlite.media.synth import Scene, render
from amberlite.run.ray_executor import RayExecutor

work = Path(os.environ["WORK"])
clips, seconds = int(os.environ["CLIPS"]), float(os.environ["SECONDS_PER_CLIP"])
gpu = torch.cuda.is_available()
print(f"torch {torch.__version__}, cuda: {gpu}" + (f" ({torch.cuda.get_device_name(0)})" if gpu else ""))


def mark(what):  # phase boundaries for the utilisation log
    (work / "phases.txt").open("a").write(f"{time.time():.3f} {what}\n")


# 1. media: generated 1080p clips with hard cuts (a scene every 2 s), fast preset
rng = np.random.default_rng(0)
paths = []
t = time.perf_counter()
for c in range(clips + 1):  # clip 0: a 2 s warm-up (starts the actors, loads the models)
    p = work / f"clip{c}.mp4"
    if not p.exists():
        n_scenes = 1 if c == 0 else max(1, int(seconds * 25) // 50)
        scenes = [
            Scene(frames=50, background=tuple(int(x) for x in rng.integers(20, 235, 3)),
                  position=(float(rng.uniform(0.2, 0.8)), 0.5), radius=0.2,
                  motion=(float(rng.normal(0, 1)), 0.0), seed=int(rng.integers(1 << 30)))
            for _ in range(n_scenes)
        ]
        render(p, scenes, 1920, 1080, fps=25, preset="ultrafast", seed=c)
    paths.append(p)
warm, paths = paths[0], paths[1:]
frames_total = 0
for p in paths:
    with av.open(str(p)) as f:
        frames_total += f.streams.video[0].frames
print(f"media: {clips} clips, {frames_total} frames at 1080p, + a warm-up clip "
      f"({time.perf_counter() - t:.1f} s); times below exclude actor start and model load")

# 2. the physical limit: PyAV decode of the same files, all threads, no conversion
t = time.perf_counter()
for p in paths:
    with av.open(str(p)) as f:
        s = f.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for _ in f.decode(s):
            pass
decode_fps = frames_total / (time.perf_counter() - t)
print(f"decode only (PyAV, threads):        {decode_fps:8.0f} frames/s")

# 3. a Ray cluster with one GPU (a logical one without a GPU: the path is the same)
ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
print("ray resources:", {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")})
exe = RayExecutor()
store = amberlite.open(work / "store")
store.ingest([warm, *paths], progress=False)
store.set_segmenter("shot", "transnetv2")
aliases = [p.stem for p in paths]
store.materialize("transnetv2", "clip0", executor=exe, progress=False)  # warm: actor, model

mark("segment-start")
t = time.perf_counter()
stats = store.materialize("transnetv2", aliases, executor=exe, progress=False)
seg_s = time.perf_counter() - t
mark("segment-end")
shots = store.query("SELECT count(*) AS n FROM shots")["n"][0] - 1
print(f"transnetv2 segmenter (Ray actor):   {frames_total / seg_s:8.0f} frames/s "
      f"({seg_s:.1f} s, {shots} shots, {stats.failed} failed; "
      f"{frames_total / seg_s / decode_fps:.2f} x decode)")

# 4. a TorchScript model feature: every frame of each clip at 224x224 through a small CNN in
#    batches of 256 (decode thread ahead of the model), the asset's mean output as its value
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 7, stride=4), torch.nn.ReLU(),
    torch.nn.Conv2d(32, 64, 3, stride=2), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 64),
).eval()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.jit.script(net).save(str(work / "frame_net.pt"))
(work / "gpu_features.py").write_text('''
import numpy as np
import pyarrow as pa
from amberlite import feature, model
from amberlite.library.transnet import decoded_chunks

frame_net = model("frame_net", "frame_net.pt", version=1, autocast="bfloat16")

@feature(entity="asset", output=pa.list_(pa.float32(), 64), models=[frame_net],
         resources={"gpu": 1})
def clip_vec(asset, frame_net):
    outs = []
    for x in decoded_chunks(asset.path, asset.index, chunk=256, size=(224, 224)):
        outs.append(frame_net(x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))
    return np.concatenate(outs).mean(axis=0).astype(np.float32)
''')
store.apply(work / "gpu_features.py")
store.materialize("clip_vec", "clip0", executor=exe, progress=False)  # warm: actor, model
mark("model-start")
t = time.perf_counter()
stats = store.materialize("clip_vec", aliases, executor=exe, progress=False)
feat_s = time.perf_counter() - t
mark("model-end")
print(f"TorchScript model feature (Ray):    {frames_total / feat_s:8.0f} frames/s "
      f"({feat_s:.1f} s, {stats.computed} values, {stats.failed} failed)")
exe.close()
ray.shutdown()
EOF

if [ -n "$SAMPLER" ]; then
  kill "$SAMPLER" 2>/dev/null || true
  sleep 0.5
  "$PYTHON" - <<'EOF'
import os
from pathlib import Path

work = Path(os.environ["WORK"])
rows = [l.split(",") for l in (work / "gpu_util.csv").read_text().split("\n") if l.strip()]
util = [float(r[0]) for r in rows if r[0].strip().replace(".", "").isdigit()]
mem = [float(r[1]) for r in rows if len(r) > 1 and r[1].strip().replace(".", "").isdigit()]
if util:
    busy = [u for u in util if u > 0]
    print(f"GPU utilisation: mean {sum(util) / len(util):.0f} %, max {max(util):.0f} %, "
          f"mean while busy {sum(busy) / max(len(busy), 1):.0f} % "
          f"({len(util)} samples at 4/s); memory max {max(mem):.0f} MiB")
EOF
fi
echo "work folder: $WORK"

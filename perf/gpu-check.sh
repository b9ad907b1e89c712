#!/usr/bin/env bash
# One command for a CUDA machine that has torch but no internet (docs/performance.md, "On a GPU"):
# install clipood and what it lacks from a local wheel folder, then run perf/gpu_check.py.
#
#   perf/gpu-check.sh WHEELS_DIR [gpu_check.py options]      e.g. perf/gpu-check.sh .whl --out $OUT/gpu.json
#
# WHEELS_DIR holds wheels of the packages that machine lacks (`make gpu-wheels` fetches them here:
# open_clip_torch, ftfy, wcwidth, ...). Installation goes into a virtual environment that sees the
# machine's own packages (torch, CUDA), so nothing of theirs is replaced; every wheel in WHEELS_DIR is
# installed without its dependencies, and any requirement of clipood still missing is named.
# (On an offline cluster with a complete wheel folder, the plain resolving install is
#  pip install --no-index --find-links WHEELS_DIR clipood; docs/performance.md.)
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: perf/gpu-check.sh WHEELS_DIR [gpu_check.py options]  (WHEELS_DIR: a folder of wheels; make gpu-wheels)" >&2
  exit 2
fi
WHEELS=$(cd "$1" && pwd); shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
VENV=${CLIPOOD_GPU_VENV:-/tmp/clipood-gpu-venv}
"$PY" -c "import torch" 2>/dev/null || { echo "gpu-check: $PY has no torch; install the machine's CUDA build of torch first" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
# the wheels first, without their dependencies (the machine's own torch, numpy, ... stay), then clipood itself
"$VENV/bin/python" -m pip install --quiet --no-index --no-deps "$WHEELS"/*.whl
"$VENV/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps -e "$REPO" || {
  echo "gpu-check: clipood did not install from $REPO (its build needs setuptools>=77: put its wheel in $WHEELS)" >&2
  exit 2; }
# what clipood requires and this machine still lacks: named, not fatal (the demo step needs the towers packages)
"$VENV/bin/python" - <<'PY'
import re
from importlib import metadata
missing = []
for req in metadata.requires("clipood") or []:
    if "extra ==" in req:
        continue
    name = re.split(r"[ <>=!~;\[(]", req, maxsplit=1)[0]
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        missing.append(name)
if missing:
    print("gpu-check: not installed here (add their wheels to the wheel folder to use them): " + ", ".join(missing))
PY
cd "$REPO"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$VENV/bin/python" perf/gpu_check.py "$@"

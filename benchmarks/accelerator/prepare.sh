#!/usr/bin/env bash
# Prepare the accelerator jobs HERE (a machine with the package index and the project's venv):
# the wheels the lent machine lacks, the data pack and the room bank, all under .accel/ (ignored
# by git, named in the device call's carry). Run from anywhere:
#
#   bash benchmarks/accelerator/prepare.sh [DATA]          # DATA: ../shared/data/gtzan-mini
#   ROOM_CACHE=DIR bash benchmarks/accelerator/prepare.sh  # roomsim's IR bank from DIR
#   PACK_ARGS='--compression 0.95' bash ...                 # extra flags for the pack
#
# Checks that what travels (tracked and untracked-not-ignored files plus .accel) stays under
# the device call's 64 MiB (LIMIT_MIB, default 63 for a margin): the shipped exported models
# must be set aside first (aside.sh out; they come back with aside.sh back).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
DATA=${1:-../shared/data/gtzan-mini}
LIMIT_MIB=${LIMIT_MIB:-63}
# keras at the version the jobs were tested with here; the rest is what keras, optree and
# soundfile need beyond the lent machine's numpy, scipy, h5py, ml-dtypes, rich, JAX and PyTorch
# (each wheel's Requires-Dist is checked below).
KERAS=$("$PY" -c 'import importlib.metadata as m; print(m.version("keras"))')
WHEELS="keras==$KERAS namex optree soundfile absl-py packaging typing-extensions cffi pycparser tqdm"

rm -rf .accel/whl && mkdir -p .accel/whl
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .accel/whl $WHEELS
"$PY" - <<'PY'
"""Every wheel's requirements (no extras) must be among the wheels or on the lent machine."""
import re, zipfile
from pathlib import Path
there = {"numpy", "scipy", "h5py", "ml-dtypes", "rich", "jax", "jaxlib", "torch", "pip",
         "setuptools", "markdown-it-py", "pygments", "mdurl", "colorama"}
wheels = sorted(Path(".accel/whl").glob("*.whl"))
have = {re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower() for w in wheels} | there
missing = set()
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                req = re.split(r"[ ;<>=!~\[(]", line.split(":", 1)[1].strip())[0]
                req = re.sub(r"[-_.]+", "-", req).lower()
                if req not in have and 'platform_system == "Windows"' not in line:
                    missing.add(f"{req} (for {w.name})")
print("wheels:", ", ".join(w.name for w in wheels))
if missing:
    raise SystemExit("missing on the lent machine: " + ", ".join(sorted(missing)))
PY

# The room bank: roomsim.augmenter's impulse responses at the job's 16 kHz, which the lent
# machine (no pyroomacoustics) reads from .accel/rooms. ROOM_CACHE: a cache_dir that holds it
# already; else it is computed here (about 30 s).
rm -rf .accel/rooms
if [ -n "${ROOM_CACHE:-}" ]; then
  # Only the 16 kHz bank of the cache, not its features and maps.
  bank=$("$PY" -c 'from edge_genre.train import roomsim; print(roomsim.ROOM_AUGMENT.bank.key(16000))')
  mkdir -p .accel/rooms/rooms && cp "$ROOM_CACHE/rooms/$bank.npz" .accel/rooms/rooms/
else
  "$PY" -c 'from edge_genre.train import roomsim; roomsim.augmenter(16000, cache_dir=".accel/rooms")'
fi
[ -d .accel/rooms ] && echo "room bank: $(du -sh .accel/rooms | cut -f1)"

# With a bank beside it, the pack is coded smaller (libsndfile's Opus level 0.95: 74 kB a track
# instead of 110; musicnn's vector of a window at cosine 0.994-0.996 to the WAV's): the tree,
# the wheels, the bank and the pack must stay under the call's 64 MiB. PACK_ARGS overrides.
if [ -z "${PACK_ARGS+x}" ]; then
  PACK_ARGS=""
  [ -d .accel/rooms ] && PACK_ARGS="--compression 0.95"
fi
rm -rf .accel/data
# shellcheck disable=SC2086
"$PY" -m edge_genre.train.accelerate pack --data "$DATA" --out .accel/data $PACK_ARGS

# Files set aside (aside.sh out) are tracked but absent: stat fails on them, and they do not travel.
tree=$( (git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null || true) \
  | awk '{s+=$1} END {print s+0}')
accel=$(find .accel -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
awk -v t="$tree" -v a="$accel" -v l="$LIMIT_MIB" 'BEGIN {
  m = 1048576; printf "travels: tree %.1f MiB + .accel %.1f MiB = %.1f MiB (limit %s)\n", t/m, a/m, (t+a)/m, l
  if (t + a > l * m) { print "error: over the limit; set the exported models aside first (bash benchmarks/accelerator/aside.sh out), or pack smaller (PACK_ARGS=\047--compression 0.97\047)" > "/dev/stderr"; exit 1 } }'

#!/usr/bin/env bash
# Run THERE, on the lent accelerator machine, as the command of one device call whose carry
# names .accel (made here by prepare.sh), from the repository root:
#
#   bash benchmarks/accelerator/run.sh [teach|both|robust|paper]
#
# Installs the carried wheels into /tmp/site, lays the package out from the checkout
# (shim.py: nothing is built or installed), KERAS_BACKEND=jax unless set, then:
# - teach (the default since both jobs below ran on 2026-12-04): the default's YAMNet body,
#   from the shipped yamnet-musicnn.npz, taught further by the room-robust musicnn as on the
#   CPU (6 room copies, 80 two-track mixes, lr 3e-5) for all of TOTAL_SECONDS: on the CPU 400
#   steps took 1,112 s; here the budget buys several times as many. -> $OUT/teach
#   (yamnet-musicnn.npz, robust-log.json).
# - both: robust-teacher (musicnn self-distilled) for ROBUST_SECONDS (default 420: 7 minutes,
#   data and compilation included), then paper-cv with what is left of TOTAL_SECONDS (default
#   570, under the call's 600 s). -> $OUT/robust (musicnn-robust.npz, robust-log.json) and
#   $OUT/paper (paper-cv.json); robust or paper alone.
# The whole output also goes to $OUT/run.log. Extra flags for the jobs: TEACH_ARGS,
# ROBUST_ARGS, PAPER_ARGS (e.g. PAPER_ARGS='--folds 3,4,5' to finish a cut cross-validation).
set -uo pipefail
START=$(date +%s)
JOBS=${1:-teach}
case "$JOBS" in teach|both|robust|paper) ;; *) echo "usage: run.sh [teach|both|robust|paper]" >&2; exit 2 ;; esac
TOTAL_SECONDS=${TOTAL_SECONDS:-570}
ROBUST_SECONDS=${ROBUST_SECONDS:-420}
OUT=${OUT:?run inside a device call: \$OUT is its output folder}
DATA=${ACCEL_DATA:-.accel/data}
SITE=${SITE:-/tmp/site}
SHIM=${SHIM:-/tmp/shim}
mkdir -p "$OUT/$([ "$JOBS" = both ] && echo robust || echo "$JOBS")"
[ "$JOBS" = both ] && mkdir -p "$OUT/paper"
exec > >(tee -a "$OUT/run.log") 2>&1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .accel/whl/*.whl || exit 3
python3 benchmarks/accelerator/shim.py "$SHIM" >/dev/null || exit 3
# PYTHONSAFEPATH: the checkout root holds edge_genre/ (without train/ etc.), which would shadow
# the shim for "python3 -m" run from there.
export PYTHONPATH="$SITE:$SHIM" PYTHONSAFEPATH=1 KERAS_BACKEND=${KERAS_BACKEND:-jax}
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
python3 -c 'import jax; print("jax", jax.__version__, jax.devices())' || true

# The room bank must have travelled: computing it needs pyroomacoustics, which is not there.
[ -d .accel/rooms ] || { echo "no .accel/rooms: run benchmarks/accelerator/prepare.sh here first" >&2; exit 3; }
ROOMS=(--room-cache .accel/rooms)
rc=0
if [ "$JOBS" = teach ]; then
  budget=$((TOTAL_SECONDS - $(date +%s) + START))
  # shellcheck disable=SC2086
  timeout $((budget + 30)) python3 -m edge_genre.train.accelerate robust-teacher \
    --body yamnet --teacher musicnn --start edge_genre/models/yamnet-musicnn.npz \
    --copies 6 --mixes 80 --grid 0.96 --stats-crops 2048 --lr 3e-5 --precision fp32 \
    --steps 20000 \
    --data "$DATA" --out "$OUT/teach" --max-seconds "$budget" "${ROOMS[@]}" \
    ${TEACH_ARGS:-} || rc=$?
  echo "teach exit $rc after $(( $(date +%s) - START )) s"
fi
if [ "$JOBS" = both ] || [ "$JOBS" = robust ]; then
  budget=$ROBUST_SECONDS
  [ "$JOBS" = robust ] && budget=$((TOTAL_SECONDS - $(date +%s) + START))
  # shellcheck disable=SC2086
  timeout $((budget + 30)) python3 -m edge_genre.train.accelerate robust-teacher \
    --data "$DATA" --out "$OUT/robust" --max-seconds "$budget" "${ROOMS[@]}" \
    ${ROBUST_ARGS:-} || rc=$?
  echo "robust-teacher exit $rc after $(( $(date +%s) - START )) s"
fi
if [ "$JOBS" = both ] || [ "$JOBS" = paper ]; then
  left=$((TOTAL_SECONDS - $(date +%s) + START))
  if [ "$left" -gt 60 ]; then
    # shellcheck disable=SC2086
    timeout "$left" python3 -m edge_genre.train.accelerate paper-cv --data "$DATA" \
      --out "$OUT/paper" --max-seconds "$((left - 10))" ${PAPER_ARGS:-} || rc=$?
    echo "paper-cv exit $rc after $(( $(date +%s) - START )) s"
  else
    echo "paper-cv: only $left s left, not started"
  fi
fi
exit $rc

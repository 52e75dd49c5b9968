#!/usr/bin/env bash
# Prove the edge install on arm64 (a Raspberry Pi's architecture) without a Pi: build a Debian
# bookworm arm64 root with debootstrap, run it under qemu-user-static, install the built wheel
# with the `edge` extra from PyPI there, and run `edge-genre predict` on a real GTZAN excerpt.
#
# Opt-in (not part of the test suite): needs root, network to Debian and PyPI, ~1.5 GB of disk and
# 15-40 minutes (everything arm64 runs emulated). Run from the repository root:
#
#   sudo apt install debootstrap qemu-user-static binfmt-support
#   sudo benchmarks/arm64/run.sh [ROOT_DIR]        # default /var/tmp/edge-genre-arm64
#
# Environment: MODEL=path (a model file; default the shipped one inside the wheel),
# EXCERPT=path (default ../shared/data/gtzan-mini/genres/jazz/jazz.00002.wav),
# MIRROR (default http://deb.debian.org/debian), QEMU_CPU (default cortex-a72, a Pi 4's core;
# cortex-a76 is a Pi 5's). The root is kept for reruns; delete ROOT_DIR to start over.
#
# Two things qemu-user 7.2 (bookworm's) gets wrong, worked around here:
# - it passes the host's x86 /proc/cpuinfo through; the cpuinfo library inside LiteRT and
#   onnxruntime segfaults on it while creating an interpreter. A Pi 4's /proc/cpuinfo is
#   bind-mounted over it.
# - its default "max" CPU has features no Pi has (SVE2, SME, i8mm); with it, LiteRT's XNNPACK int8
#   kernels return wrong probabilities (top-1 agreement 0 with x86, while the same file without
#   XNNPACK, and fp32, agree exactly). Emulating the Pi's own core (QEMU_CPU=cortex-a72 or
#   cortex-a76) gives exactly x86's probabilities.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
ROOT=${1:-/var/tmp/edge-genre-arm64}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
EXCERPT=${EXCERPT:-$REPO/../shared/data/gtzan-mini/genres/jazz/jazz.00002.wav}
PY=${PYTHON:-python3}

say() { echo "arm64: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot, mounts)"; exit 2; }
command -v debootstrap >/dev/null || { say "apt install debootstrap qemu-user-static binfmt-support"; exit 2; }
[ -f "$EXCERPT" ] || { say "no excerpt at $EXCERPT (set EXCERPT=)"; exit 2; }

# Emulation: binfmt_misc must hand aarch64 binaries to qemu (flag F: works inside the chroot).
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || systemctl restart systemd-binfmt 2>/dev/null || true
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { say "qemu-aarch64 binfmt not registered (apt install qemu-user-static binfmt-support)"; exit 2; }

# 1. The root file system (kept between runs; delete ROOT to start over).
if [ ! -e "$ROOT/.edge-genre-bootstrapped" ]; then
    say "debootstrap bookworm arm64 into $ROOT (slow: second stage runs emulated)"
    rm -rf "$ROOT"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$ROOT" "$MIRROR"
    touch "$ROOT/.edge-genre-bootstrapped"
fi

# 2. Network and trust from the host (a proxy's CA, if any, is in the host bundle).
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/etc/ssl/certs" && cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && grep -v -E "find-links|extra-index-url|file://" /etc/pip.conf > "$ROOT/etc/pip.conf" || true

mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev; do
    mountpoint -q "$ROOT/$m" || { mount --rbind "/$m" "$ROOT/$m" && mounted+=("$ROOT/$m"); }
done
mkdir -p "$ROOT/opt/pi"
{ for i in 0 1 2 3; do printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"; done
  printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated)\n'; } > "$ROOT/opt/pi/cpuinfo"
mount --bind "$ROOT/opt/pi/cpuinfo" "$ROOT/proc/cpuinfo" && mounted=("$ROOT/proc/cpuinfo" "${mounted[@]}")

# 3. The wheel, built here from the working tree (pure Python: one wheel for every arch).
work="$ROOT/opt/edge-genre"
rm -rf "$work" && mkdir -p "$work/dist"
say "building the wheel"
# Without build isolation first (offline-friendly); a Python without `wheel` fails there, quietly,
# and the isolated build fetches it.
"$PY" -m pip wheel --no-deps --no-build-isolation -q -w "$work/dist" "$REPO" >/dev/null 2>&1 \
    || "$PY" -m pip wheel --no-deps -q -w "$work/dist" "$REPO" >&2
wheel=$(basename "$(ls "$work"/dist/edge_genre-*.whl | head -1)")
cp "$EXCERPT" "$work/"
excerpt=$(basename "$EXCERPT")
model_arg=""
if [ -n "${MODEL:-}" ]; then cp "$MODEL" "$work/"; model_arg="--model /opt/edge-genre/$(basename "$MODEL")"; fi

# Reference: the same command on this machine, when its Python has edge-genre.
if "$PY" -c "import edge_genre.edge.classifier" 2>/dev/null; then
    say "reference on $(uname -m): edge-genre predict ${model_arg:+--model ${MODEL}} $excerpt"
    "$PY" -m edge_genre predict ${MODEL:+--model "$MODEL"} "$EXCERPT" | head -4 >&2 || true
fi

# 4. Inside the arm64 root: venv, `pip install wheel[edge]`, predict.
say "installing $wheel[edge] in the arm64 root and running predict (emulated)"
chroot "$ROOT" /usr/bin/env -i QEMU_CPU="${QEMU_CPU:-cortex-a72}" HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off \
    /bin/bash -euo pipefail -c "
cd /opt/edge-genre
echo \"machine: \$(uname -m) (qemu \$QEMU_CPU), \$(. /etc/os-release; echo \$PRETTY_NAME), \$(python3 --version)\"
python3 -m venv venv
venv/bin/pip install -q 'dist/$wheel[edge]'
venv/bin/pip list 2>/dev/null | grep -i -E '^(edge-genre|ai-edge-litert|numpy|sounddevice) '
venv/bin/python - <<'PYEOF'
import sys, edge_genre.edge.classifier
heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'librosa')]
print('heavy modules imported:', heavy or 'none')
PYEOF
now() { python3 -c 'import time; print(time.time())'; }
start=\$(now)
venv/bin/edge-genre predict $model_arg '$excerpt'
python3 -c \"print('predict: wall', round(\$(now) - \$start, 2), 's (emulated arm64, includes interpreter start)')\"
"

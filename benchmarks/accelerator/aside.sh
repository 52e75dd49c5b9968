#!/usr/bin/env bash
# The device call sends the whole working tree beside .accel, 64 MiB in all, and the shipped
# model files alone are over 55 MiB. The jobs read only weights (*.npz), never the exported
# models (*.tflite, *.onnx), so those step aside into the ignored .accel-aside/ for the call and
# come back after it:
#
#   bash benchmarks/accelerator/aside.sh list   # what would step aside, one path a line
#   bash benchmarks/accelerator/aside.sh out    # before the device call
#   bash benchmarks/accelerator/aside.sh back   # after it (git status is clean again)
set -euo pipefail
cd "$(dirname "$0")/../.."
ASIDE=.accel-aside
exported() { git ls-files 'edge_genre/models/*.tflite' 'edge_genre/models/*.onnx'; }

case "${1:-}" in
  list)
    exported ;;
  out)
    if [ -n "$(find "$ASIDE" -type f 2>/dev/null | head -1)" ]; then
      echo "error: $ASIDE already holds files: run 'aside.sh back' first" >&2; exit 2
    fi
    exported | while read -r path; do
      mkdir -p "$ASIDE/$(dirname "$path")"
      mv "$path" "$ASIDE/$path"
    done
    echo "set aside: $(du -sh "$ASIDE" | cut -f1) in $ASIDE (bring them back with 'aside.sh back')" ;;
  back)
    [ -d "$ASIDE" ] || { echo "nothing set aside"; exit 0; }
    (cd "$ASIDE" && find . -type f -print) | while read -r path; do
      mkdir -p "$(dirname "$path")"
      mv "$ASIDE/$path" "$path"
    done
    rm -rf "$ASIDE"
    echo "back in place" ;;
  *)
    echo "usage: aside.sh list|out|back" >&2; exit 2 ;;
esac

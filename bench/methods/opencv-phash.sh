#!/usr/bin/env bash
# opencv-phash.sh — benchmark method (peer): OpenCV img_hash PHash (64-bit), brute-force Hamming top-10 over the references.
set -euo pipefail
. "$(dirname "$0")/common.sh"
method_args "$@"
need_bin "$BUILD_DIR/bench/cv_hash"
refs=$(mktemp)
trap 'rm -f "$refs"' EXIT
bench_refs "$DATA" "$refs"
"$BUILD_DIR/bench/cv_hash" --algo phash "$DATA" "$refs" "$QDIR" "$OUT" "$TIMING" --top 10 --threads "$(bench_threads)"

#!/usr/bin/env bash
# opencv-orb.sh — benchmark method (peer): OpenCV ORB 500 features + FLANN LSH retrieval + RANSAC homography verification.
set -euo pipefail
. "$(dirname "$0")/common.sh"
method_args "$@"
need_bin "$BUILD_DIR/bench/cv_orb"
refs=$(mktemp)
trap 'rm -f "$refs"' EXIT
bench_refs "$DATA" "$refs"
"$BUILD_DIR/bench/cv_orb" "$DATA" "$refs" "$QDIR" "$OUT" "$TIMING" --matcher lsh --lsh 8,20,0 --candidates 5 --threads "$(bench_threads)"

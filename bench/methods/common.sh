# common.sh — helpers sourced by the benchmark method scripts in bench/methods/ (argument checks, reference list, threads).
# shellcheck shell=bash

# method_args DATA_DIR QUERY_DIR OUT_PREDICTIONS.csv OUT_TIMING.json: checks and sets DATA QDIR OUT TIMING.
method_args() {
    if [ $# -ne 4 ]; then
        echo "usage: $(basename "$0") DATA_DIR QUERY_DIR OUT_PREDICTIONS.csv OUT_TIMING.json (BUILD_DIR in the environment)" >&2
        exit 2
    fi
    # shellcheck disable=SC2034 # used by the sourcing script
    DATA=$1 QDIR=$2 OUT=$3 TIMING=$4
    [ -d "$DATA" ] || { echo "$(basename "$0"): no data directory $DATA" >&2; exit 2; }
    [ -d "$QDIR" ] || { echo "$(basename "$0"): no query directory $QDIR" >&2; exit 2; }
    [ -n "${BUILD_DIR:-}" ] || { echo "$(basename "$0"): BUILD_DIR is not set" >&2; exit 2; }
}

# need_bin PATH: exits 3 ("missing") when a program the method needs was not built.
need_bin() {
    [ -x "$1" ] || { echo "$(basename "$0"): missing $1 (not built?)" >&2; exit 3; }
}

# bench_refs DATA_DIR OUT_LIST: the reference set every method indexes, one path per line relative to
# DATA_DIR: the `path` column of corpus.csv, then every image in distractors/ (if present) not already listed.
bench_refs() {
    local data=$1 out=$2
    awk 'NR > 1 {
            line = $0; sub(/\r$/, "", line)
            if (substr(line, 1, 1) == "\"") { p = substr(line, 2); sub(/".*/, "", p) }
            else { p = line; sub(/,.*/, "", p) }
            if (p != "" && !(p in seen)) { seen[p] = 1; print p }
         }' "$data/corpus.csv" > "$out"
    if [ -d "$data/distractors" ]; then
        (cd "$data" && find distractors -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \
            -o -iname '*.webp' -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.bmp' -o -iname '*.gif' \) | LC_ALL=C sort) |
            awk 'NR == FNR { seen[$0] = 1; next } !($0 in seen)' "$out" - >> "$out"
    fi
    [ -s "$out" ] || { echo "$(basename "$0"): no references found in $data/corpus.csv" >&2; exit 2; }
}

# bench_threads: threads a method may use (BENCH_THREADS, else every core nproc reports).
bench_threads() { echo "${BENCH_THREADS:-$(nproc)}"; }

#!/bin/sh
# Generates the benchmark's query images and ground truth with querygen, with fixed seeds, into $BENCH_WORK/queries/quick|full.
#
# usage: bench/data/make-queries.sh [--quick|--full] [--jobs N]
#
# Runs make-data.sh for the same mode first (fast when the data is already there), then querygen.
# Skips the work when a stamp shows that querygen, its settings and its inputs are unchanged.
# QUERYGEN=/path/to/querygen uses an already-built binary (e.g. build-bench/bench/querygen); by
# default querygen is compiled from bench/querygen.c into $BENCH_WORK/bin with the same flags as CMake.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
data_args make-queries 2,10p "$@"
BENCH_DIR=$(dirname "$HERE")
BENCH_WORK=${BENCH_WORK:-$BENCH_DIR/work}
export BENCH_WORK LC_ALL=C
DATA=$BENCH_WORK/data
OUT=$BENCH_WORK/queries/$MODE
t_start=$(date +%s)

lock_bench_work make-queries

# Fixed settings per mode: changing them changes the benchmark.
if [ "$MODE" = quick ]; then
    SEED=1001
    PER_FAMILY=12
else
    SEED=2002
    PER_FAMILY=100
fi

sh "$HERE/make-data.sh" "--$MODE" --jobs "$JOBS"

# querygen: given, or compiled here (CFLAGS as in the top-level CMakeLists.txt, so both give the same bytes)
if [ -n "${QUERYGEN:-}" ]; then
    qg=$QUERYGEN
else
    qg=$BENCH_WORK/bin/querygen
    if [ ! -x "$qg" ] || [ "$BENCH_DIR/querygen.c" -nt "$qg" ]; then
        echo "make-queries: compiling querygen" >&2
        mkdir -p "$BENCH_WORK/bin"
        # shellcheck disable=SC2046
        ${CC:-cc} -std=c11 -O2 -Wall -Wextra -ffp-contract=off -fopenmp "$BENCH_DIR/querygen.c" -o "$qg.tmp" \
            $(pkg-config --cflags --libs vips) -lm
        mv "$qg.tmp" "$qg"
    fi
fi

# stamp: the tool, the settings and the inputs (names and sizes of every input file)
stamp_now=$(
    {
        sha256sum "$qg" | cut -d' ' -f1
        echo "seed=$SEED per=$PER_FAMILY"
        (cd "$DATA" && find corpus outsiders hardneg -type f -printf '%p %s\n' | sort)
        cat "$DATA/hardneg.csv"
    } | sha256sum | cut -d' ' -f1
)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp_now" ] && [ -f "$OUT/groundtruth.csv" ]; then
    echo "make-queries: $OUT is up to date ($(($(wc -l <"$OUT/groundtruth.csv") - 1)) queries)" >&2
    exit 0
fi

rm -rf "$OUT"
mkdir -p "$OUT"
"$qg" --corpus "$DATA/corpus" --outsiders "$DATA/outsiders" --hardneg "$DATA/hardneg.csv" --out "$OUT" \
    --seed "$SEED" --per-family "$PER_FAMILY" --jobs "$JOBS"
echo "$stamp_now" >"$OUT/.stamp"

echo "make-queries: queries per family:" >&2
awk -F, 'NR>1 {n[$3]++} END {for (f in n) printf "  %-16s %5d\n", f, n[f]}' "$OUT/groundtruth.csv" | sort >&2
echo "make-queries: $MODE queries ready in $OUT ($(($(date +%s) - t_start)) s)" >&2

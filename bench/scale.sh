#!/usr/bin/env bash
# scale.sh — the scan pipeline against large synthetic corpora: per-stage times and throughput at 100k and 1M works.
#
# usage: bench/scale.sh [--works "100000 1000000"] [--build-dir DIR] [--work DIR]
# Needs the bench data of a bench/run (--quick is enough) and the bench tools built (bench/run builds them
# in build-bench/). For each size, bench/synth_index makes an index of that many works from the real
# corpus and photo images' PDQ hashes (40 random bits flipped per copy) and local features (30 % of
# each copy's visual words replaced at random), then bench/scan_speed times every stage of a scan for
# the quick queries (all of them, then the negative ones only: the common case when a platform scans
# its uploads). The tables go to stdout and to WORK/scale/scale.md; the indexes stay in WORK/scale/.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
SIZES="100000 1000000"
BUILD_DIR="$ROOT/build-bench"
WORK="${BENCH_WORK:-$BENCH/work}"
while [ $# -gt 0 ]; do
    case "$1" in
    --works) SIZES=$2; shift ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h | --help) sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for tool in synth_index scan_speed; do
    [ -x "$BUILD_DIR/bench/$tool" ] || { echo "scale.sh: $BUILD_DIR/bench/$tool is missing: run bench/run first (or cmake --build $BUILD_DIR --target $tool)" >&2; exit 2; }
done
DATA="$WORK/data"
QUERIES="$WORK/queries/quick"
[ -d "$DATA/corpus" ] && [ -f "$QUERIES/groundtruth.csv" ] || { echo "scale.sh: no bench data in $WORK: run bench/run --quick first" >&2; exit 2; }

OUT="$WORK/scale"
rm -rf "$OUT/base" "$OUT/negatives"
mkdir -p "$OUT/base" "$OUT/negatives"
# the images whose features seed the synthetic works: the corpus and the photos, not the query sources
for d in corpus photos-jpeg; do
    [ -d "$DATA/$d" ] || continue
    for f in "$DATA/$d"/*; do ln -s "$f" "$OUT/base/$d-$(basename "$f")"; done
done
awk -F, 'NR > 1 && $3 ~ /^neg_/ { print $1 }' "$QUERIES/groundtruth.csv" | while read -r q; do
    ln -s "$QUERIES/$q" "$OUT/negatives/$q"
done

{
    echo "# Scan stages against synthetic corpora"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown),"
    echo "\`bench/scale.sh --works \"$SIZES\"\`. Each block is one bench/scan_speed run."
} >"$OUT/scale.md"
for n in $SIZES; do
    idx="$OUT/index-$n"
    if [ ! -f "$idx/catalog.sqlite" ]; then
        rm -rf "$idx"
        "$BUILD_DIR/bench/synth_index" "$idx" --works "$n" --images "$OUT/base"
    fi
    for set in all negatives; do
        dir=$QUERIES
        [ "$set" = negatives ] && dir=$OUT/negatives
        {
            echo
            echo "## $n works, $set quick queries"
            echo
            echo '```'
            "$BUILD_DIR/bench/scan_speed" "$idx" "$dir"
            echo '```'
        } | tee -a "$OUT/scale.md"
    done
done
echo "scale.sh: tables in $OUT/scale.md"

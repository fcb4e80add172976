#!/usr/bin/env bash
# darkbg.sh — copies of transparent corpus drawings made by a tool that drops alpha (black background), scanned against a bench index.
#
# usage: bench/darkbg.sh INDEX [--build-dir DIR] [--work DIR] [--out DIR]
# INDEX holds the bench references (bench/run's). Every 15th PNG of WORK/data/corpus (in name order, from
# the 4th, at most 60 looked at) that has an alpha channel is flattened on black — what its transparent
# pixels hide, as a plain "drop the alpha" conversion shows it — then shrunk to 0.7x and saved as JPEG
# quality 85, with the vips command (libvips-tools, installed by bench/install-deps.sh). The queries are
# scanned with `provscan batch --top 3` and counted: the work ranked first and flagged (score >= 0.5),
# ranked first below 0.5, or not first. docs/features.md ("Dark backgrounds") quotes this.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR="$BENCH/../build-bench"
WORK="${BENCH_WORK:-$BENCH/work}"
OUT=""
INDEX=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=$2; shift ;;
    --work) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "darkbg.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$INDEX" ] || { echo "darkbg.sh: one index only" >&2; exit 2; }; INDEX=$1 ;;
    esac
    shift
done
[ -n "$INDEX" ] || { echo "usage: bench/darkbg.sh INDEX [--build-dir DIR] [--work DIR] [--out DIR]" >&2; exit 2; }
OUT=${OUT:-$WORK/darkbg}
BIN="$BUILD_DIR/src/provscan"
[ -x "$BIN" ] || { echo "darkbg.sh: no $BIN (build first: bench/run, or cmake --build $BUILD_DIR)" >&2; exit 2; }
command -v vips >/dev/null || { echo "darkbg.sh: the vips command is missing (bench/install-deps.sh)" >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT/q"
find "$WORK/data/corpus" -maxdepth 1 -name '*.png' | LC_ALL=C sort | awk 'NR % 15 == 4' | head -60 |
    while read -r f; do
        [ "$(vipsheader -f bands "$f")" = 4 ] || continue
        name=$(basename "$f" .png)
        vips flatten "$f" "$OUT/flat.v" --background 0 &&
            vips resize "$OUT/flat.v" "$OUT/q/$name.jpg[Q=85]" 0.7 ||
            echo "darkbg.sh: cannot make a query from $f" >&2
    done
rm -f "$OUT/flat.v"
find "$OUT/q" -type f | LC_ALL=C sort >"$OUT/queries.txt"
"$BIN" batch --quiet --top 3 "$INDEX" --input "$OUT/queries.txt" --output "$OUT/out.jsonl" || [ $? = 1 ]
python3 - "$OUT/out.jsonl" <<'PY'
import json, os, sys
flagged = weak = other = 0
for line in open(sys.argv[1]):
    rec = json.loads(line)
    want = os.path.splitext(os.path.basename(rec["query"]))[0]
    top = (rec.get("matches") or [None])[0]
    if top and os.path.splitext(os.path.basename(top["work"]["path"]))[0] == want:
        if top["score"] >= 0.5:
            flagged += 1
        else:
            weak += 1
    else:
        other += 1
print("queries %d: work first and flagged %d, first below 0.5 %d, not first %d" % (flagged + weak + other, flagged, weak, other))
PY

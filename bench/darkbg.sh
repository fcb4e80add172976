#!/usr/bin/env bash
# darkbg.sh — copies of transparent corpus drawings made by a tool that drops alpha (black background), scanned against a bench index.
#
# usage: bench/darkbg.sh INDEX [--mode black|cutout|pasted] [--build-dir DIR] [--work DIR] [--out DIR]
# INDEX holds the bench references (bench/run's). Every 15th PNG of WORK/data/corpus (in name order, from
# the 4th, at most 60 looked at) that has an alpha channel is made into a query with the vips command
# (libvips-tools, installed by bench/install-deps.sh). --mode black (the default): flattened on black —
# what its transparent pixels hide, as a plain "drop the alpha" conversion shows it —, shrunk to 0.7x,
# JPEG quality 85. --mode cutout: the drawing cut out by its alpha (trimmed to its box, scaled to 380
# px on its longer side, at most 2x) and composited over a photograph or drawing of WORK/data/outsiders
# (a JPEG, in turn, cropped to 900 x 900) at (220, 160), JPEG quality 85. --mode pasted: the same, but the
# drawing flattened on white first, so a rectangle is pasted. The queries are scanned with
# `provscan batch --top 3` and counted: the work ranked first and flagged (score >= 0.5), ranked first
# below 0.5, or not first. docs/features.md ("Dark backgrounds", "Invariance") quotes this.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR="$BENCH/../build-bench"
WORK="${BENCH_WORK:-$BENCH/work}"
OUT=""
INDEX=""
MODE=black
while [ $# -gt 0 ]; do
    case "$1" in
    --mode) MODE=$2; shift ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --work) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "darkbg.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$INDEX" ] || { echo "darkbg.sh: one index only" >&2; exit 2; }; INDEX=$1 ;;
    esac
    shift
done
[ -n "$INDEX" ] || { echo "usage: bench/darkbg.sh INDEX [--mode black|cutout|pasted] [--build-dir DIR] [--work DIR] [--out DIR]" >&2; exit 2; }
case "$MODE" in black | cutout | pasted) ;; *) echo "darkbg.sh: --mode is black, cutout or pasted" >&2; exit 2 ;; esac
OUT=${OUT:-$WORK/darkbg-$MODE}
BIN="$BUILD_DIR/src/provscan"
[ -x "$BIN" ] || { echo "darkbg.sh: no $BIN (build first: bench/run, or cmake --build $BUILD_DIR)" >&2; exit 2; }
command -v vips >/dev/null || { echo "darkbg.sh: the vips command is missing (bench/install-deps.sh)" >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT/q"
mapfile -t BGS < <(find "$WORK/data/outsiders" -maxdepth 1 -name '*.jpg' | LC_ALL=C sort)
[ "$MODE" = black ] || [ ${#BGS[@]} -gt 0 ] || { echo "darkbg.sh: no JPEG in $WORK/data/outsiders" >&2; exit 2; }
n=0
while read -r f; do
    [ "$(vipsheader -f bands "$f")" = 4 ] || continue
    name=$(basename "$f" .png)
    if [ "$MODE" = black ]; then
        vips flatten "$f" "$OUT/flat.v" --background 0 &&
            vips resize "$OUT/flat.v" "$OUT/q/$name.jpg[Q=85]" 0.7 ||
            echo "darkbg.sh: cannot make a query from $f" >&2
        continue
    fi
    bg=${BGS[$((n % ${#BGS[@]}))]}
    n=$((n + 1))
    vips extract_band "$f" "$OUT/alpha.v" 3
    { read -r left; read -r top; read -r width; read -r height; } < <(vips find_trim "$OUT/alpha.v" --background 0 --threshold 10)
    [ "${width:-0}" -gt 8 ] && [ "${height:-0}" -gt 8 ] || continue
    src=$f
    if [ "$MODE" = pasted ]; then
        vips flatten "$f" "$OUT/white.v" --background 255
        src=$OUT/white.v
    fi
    longer=$((width > height ? width : height))
    scale=$(echo "s = 380 / $longer; if (s > 2) s = 2; s" | bc -l)
    vips crop "$src" "$OUT/box.v" "$left" "$top" "$width" "$height" &&
        vips resize "$OUT/box.v" "$OUT/piece.v" "$scale" &&
        vips thumbnail "$bg" "$OUT/bg.v" 900 --height 900 --size force --crop centre &&
        vips composite2 "$OUT/bg.v" "$OUT/piece.v" "$OUT/c.v" over --x 220 --y 160 &&
        vips extract_band "$OUT/c.v" "$OUT/q/$name.jpg[Q=85]" 0 --n 3 ||
        echo "darkbg.sh: cannot make a query from $f" >&2
done < <(find "$WORK/data/corpus" -maxdepth 1 -name '*.png' | LC_ALL=C sort | awk 'NR % 15 == 4' | head -60)
rm -f "$OUT"/*.v
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

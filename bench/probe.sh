#!/usr/bin/env bash
# probe.sh — held-out check: edits of corpus works that no bench family makes, scanned against a bench index.
#
# usage: bench/probe.sh INDEX [--set core|extra] [--works N] [--batch-args "ARGS"] [--build-dir DIR] [--work DIR] [--out DIR]
# INDEX holds the bench references (bench/run's, or `provscan index add` of bench/work/data/corpus and
# distractors). N works of the corpus (every k-th in name order, default 40) are each edited 12 ways with
# the vips command (libvips-tools, installed by bench/install-deps.sh). The core set (default): rotated
# 45 degrees; tones inverted; a centre crop of 30 % of the area rotated 10 degrees and saved at JPEG
# quality 40; a quarter rotated 30 degrees; mirrored top to bottom then a 36 % corner crop; blurred then
# shrunk to 30 %; contrast raised; gamma 2.2; a coloured frame; pasted at 600 px into a 1600 x 1000
# "screenshot"; side by side with another corpus work; and the same screenshot of the work shrunk to
# 300 px. The extra set (--set extra): a 96-pixel thumbnail; JPEG quality 8; an off-centre crop of 12 %
# of the area (below the 15 % docs/features.md covers); stretched 1.8 x 0.9; a quarter turn then a 55 %
# corner crop; red and blue swapped; 2 bits per channel; a mosaic of 10-pixel blocks; a meme (letterbox
# bars and a caption); strong noise; rotated 15 degrees at half size; grey, mirrored, its right half.
# These are not the transformations the bench families, the calibration or any tuning used. Each query
# is scanned with `provscan batch --top 3` and counted per edit: its work ranked first and flagged (score
# >= 0.5), ranked first but below 0.5, and another work flagged first (for side by side, either of the
# two works is right); --batch-args adds options to that batch (for example --tiles). The table goes to
# stdout and OUT/probe.md (default WORK/probe, or WORK/probe-extra).
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
BUILD_DIR="$ROOT/build-bench"
WORK="${BENCH_WORK:-$BENCH/work}"
NWORKS=40
SET=core
BATCH_ARGS=""
OUT=""
INDEX=""
while [ $# -gt 0 ]; do
    case "$1" in
    --works) NWORKS=$2; shift ;;
    --set) SET=$2; shift ;;
    --batch-args) BATCH_ARGS=$2; shift ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --work) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "probe.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$INDEX" ] || { echo "probe.sh: one index only" >&2; exit 2; }; INDEX=$1 ;;
    esac
    shift
done
case "$SET" in core | extra) ;; *) echo "probe.sh: --set is core or extra" >&2; exit 2 ;; esac
[ -n "$INDEX" ] || { echo "usage: bench/probe.sh INDEX [--set core|extra] [--works N] [--batch-args \"ARGS\"] [--build-dir DIR] [--work DIR] [--out DIR]" >&2; exit 2; }
P=$BUILD_DIR/src/provscan
[ -x "$P" ] || { echo "probe.sh: $P is missing: build first (bench/run, or cmake --build $BUILD_DIR)" >&2; exit 2; }
command -v vips >/dev/null || { echo "probe.sh: the vips command is missing: run bench/install-deps.sh" >&2; exit 2; }
CORPUS=$WORK/data/corpus
[ -d "$CORPUS" ] || { echo "probe.sh: no bench corpus in $CORPUS: run bench/run first" >&2; exit 2; }
OUT=${OUT:-$WORK/probe$([ "$SET" = core ] || echo "-$SET")}
rm -rf "$OUT"
mkdir -p "$OUT/q" "$OUT/tmp"

# every k-th work of the corpus in name order
mapfile -t ALL < <(find "$CORPUS" -maxdepth 1 -type f | LC_ALL=C sort)
[ ${#ALL[@]} -ge 2 ] || { echo "probe.sh: too few works in $CORPUS" >&2; exit 2; }
step=$(( ${#ALL[@]} / NWORKS )); [ "$step" -ge 1 ] || step=1
: >"$OUT/works.tsv"
T=$OUT/tmp
i=0
for ((k = 0; k < ${#ALL[@]} && i < NWORKS; k += step)); do
    i=$((i + 1))
    f=${ALL[$k]}
    other=${ALL[$(((k + step / 2 + 1) % ${#ALL[@]}))]}
    printf '%s\t%s\t%s\n' "$i" "${f#"$WORK/data/"}" "${other#"$WORK/data/"}" >>"$OUT/works.tsv"
    # flattened onto white, three bands: every edit starts from the picture as a person sees it
    vips flatten "$f" "$T/b.v" --background "255 255 255" 2>/dev/null || vips copy "$f" "$T/b.v"
    if [ "$(vipsheader -f bands "$T/b.v")" = 1 ]; then vips colourspace "$T/b.v" "$T/c.v" srgb; mv "$T/c.v" "$T/b.v"; fi
    B=$T/b.v
    W=$(vipsheader -f width "$B"); H=$(vipsheader -f height "$B")
    Q=$OUT/q
    if [ "$SET" = core ]; then
        vips rotate "$B" "$Q/rot45_$i.jpg" 45 --background "255 255 255"
        vips invert "$B" "$Q/negative_$i.jpg"
        vips crop "$B" "$T/t.v" $((W / 4)) $((H / 4)) $((W * 55 / 100)) $((H * 55 / 100))
        vips rotate "$T/t.v" "$Q/croprot10q40_$i.jpg[Q=40]" 10 --background "0 0 0"
        vips crop "$B" "$T/t.v" $((W / 4)) $((H / 4)) $((W / 2)) $((H / 2))
        vips rotate "$T/t.v" "$Q/croprot30_$i.jpg" 30 --background "255 255 255"
        vips flip "$B" "$T/t.v" vertical
        vips crop "$T/t.v" "$Q/flipcrop_$i.png" 0 0 $((W * 6 / 10)) $((H * 6 / 10))
        vips gaussblur "$B" "$T/t.v" 3
        vips resize "$T/t.v" "$Q/blursmall_$i.jpg" 0.3
        vips linear "$B" "$Q/contrast_$i.jpg" 1.6 " -60"
        vips gamma "$B" "$Q/gamma_$i.jpg" --exponent 2.2
        vips embed "$B" "$Q/frame_$i.jpg" $((W / 6)) $((H / 6)) $((W * 4 / 3)) $((H * 4 / 3)) --extend background \
            --background "51 102 153"
        vips black "$T/k.v" 1600 1000 --bands 3
        vips linear "$T/k.v" "$T/k2.v" 1 235
        vips cast "$T/k2.v" "$T/canvas.v" uchar
        vips thumbnail "$B" "$T/s.v" 600
        vips insert "$T/canvas.v" "$T/s.v" "$Q/screenshot600_$i.png" 700 250
        vips thumbnail "$B" "$T/s.v" 300
        vips insert "$T/canvas.v" "$T/s.v" "$Q/screenshot300_$i.png" 900 400
        vips thumbnail "$B" "$T/l.v" 400 --height 400 --size force
        vips flatten "$other" "$T/o.v" --background "255 255 255" 2>/dev/null || vips copy "$other" "$T/o.v"
        if [ "$(vipsheader -f bands "$T/o.v")" = 1 ]; then vips colourspace "$T/o.v" "$T/c.v" srgb; mv "$T/c.v" "$T/o.v"; fi
        vips thumbnail "$T/o.v" "$T/r.v" 400 --height 400 --size force
        vips join "$T/l.v" "$T/r.v" "$Q/sidebyside_$i.jpg" horizontal
    else
        vips thumbnail "$B" "$Q/thumb96_$i.jpg" 96
        vips copy "$B" "$Q/jpegq8_$i.jpg[Q=8]"
        vips crop "$B" "$Q/crop12_$i.png" $((W * 40 / 100)) $((H * 25 / 100)) $((W * 35 / 100)) $((H * 35 / 100))
        vips resize "$B" "$Q/stretch_$i.jpg" 1.8 --vscale 0.9
        vips rot "$B" "$T/t.v" d90
        vips crop "$T/t.v" "$Q/rot90crop_$i.jpg" 0 0 $((H * 55 / 100)) $((W * 55 / 100))
        vips extract_band "$B" "$T/r.v" 0; vips extract_band "$B" "$T/g.v" 1; vips extract_band "$B" "$T/u.v" 2
        vips bandjoin "$T/u.v $T/g.v $T/r.v" "$Q/bgrswap_$i.jpg"
        vips boolean_const "$B" "$Q/posterize_$i.png" and 192
        vips shrink "$B" "$T/t.v" 10 10
        vips zoom "$T/t.v" "$Q/mosaic_$i.png" 10 10
        vips embed "$B" "$T/t.v" 0 $((H / 4)) "$W" $((H * 3 / 2)) --extend black
        vips text "$T/x.v" "WHEN IT FINALLY WORKS" --width $((W * 9 / 10)) --font "DejaVu Sans Bold $((H / 10 + 6))"
        vips colourspace "$T/x.v" "$T/x3.v" srgb
        vips insert "$T/t.v" "$T/x3.v" "$Q/meme_$i.jpg" $((W / 20)) $((H / 20))
        vips gaussnoise "$T/n.v" "$W" "$H" --sigma 40 --seed "$i"
        vips add "$B" "$T/n.v" "$T/t.v"
        vips cast "$T/t.v" "$Q/noise40_$i.jpg" uchar
        vips rotate "$B" "$T/t.v" 15 --background "255 255 255"
        vips resize "$T/t.v" "$Q/rot15half_$i.jpg" 0.5
        vips colourspace "$B" "$T/t.v" b-w
        vips flip "$T/t.v" "$T/f.v" horizontal
        vips crop "$T/f.v" "$Q/greymirrorhalf_$i.jpg" $((W / 2)) 0 $((W - W / 2)) "$H"
    fi
done
rm -rf "$T"
find "$OUT/q" -type f | LC_ALL=C sort >"$OUT/queries.txt"
t0=$(date +%s.%N)
rc=0
# shellcheck disable=SC2086 # BATCH_ARGS is a list of options
"$P" batch --quiet --top 3 $BATCH_ARGS "$INDEX" --input "$OUT/queries.txt" --output "$OUT/out.jsonl" || rc=$?
[ "$rc" -le 1 ] || { echo "probe.sh: provscan batch failed ($rc)" >&2; exit 1; }
t1=$(date +%s.%N)

python3 - "$OUT/works.tsv" "$OUT/out.jsonl" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$INDEX" "$(echo "$t1 - $t0" | bc)" "$BATCH_ARGS" "$SET" <<'PY' | tee "$OUT/probe.md"
import collections, json, os, sys
works_tsv, out_jsonl, commit, index, secs, batch_args, set_name = sys.argv[1:8]
work, other = {}, {}
for line in open(works_tsv):
    i, w, o = line.rstrip("\n").split("\t")
    work[i], other[i] = os.path.basename(w), os.path.basename(o)
rows = collections.OrderedDict()
for line in open(out_jsonl):
    r = json.loads(line)
    name = os.path.basename(r["query"])
    edit, rest = name.rsplit("_", 1)
    i = rest.split(".")[0]
    right = {work[i]} | ({other[i]} if edit == "sidebyside" else set())
    c = rows.setdefault(edit, [0, 0, 0, 0, 0])
    c[4] += 1
    if not r.get("ok"):
        c[3] += 1
        continue
    m = r.get("matches") or []
    if m and os.path.basename(m[0]["work"]["path"]) in right:
        c[0 if m[0]["score"] >= 0.5 else 1] += 1
    elif m and m[0]["score"] >= 0.5:
        c[2] += 1
print(f"# Probe: edits no bench family makes\n\nset {set_name}, commit {commit}, index {index}, "
      f"`provscan batch --top 3{' ' + batch_args if batch_args else ''}`, "
      f"{sum(c[4] for c in rows.values())} queries in {float(secs):.1f} s\n")
print("| edit | queries | work first, flagged | work first, score < 0.5 | other work flagged first | unreadable |")
print("|---|---:|---:|---:|---:|---:|")
tot = [0, 0, 0, 0, 0]
for edit in sorted(rows):
    c = rows[edit]
    tot = [a + b for a, b in zip(tot, c)]
    print(f"| {edit} | {c[4]} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |")
print(f"| all | {tot[4]} | {tot[0]} ({100 * tot[0] / max(tot[4], 1):.0f} %) | {tot[1]} | {tot[2]} | {tot[3]} |")
PY
echo "probe.sh: table in $OUT/probe.md" >&2

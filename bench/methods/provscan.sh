#!/usr/bin/env bash
# provscan.sh — benchmark method: provscan's own CLI end to end (index create/add with attribution, batch, JSONL -> CSV).
set -euo pipefail
. "$(dirname "$0")/common.sh"
method_args "$@"
P=${PROVSCAN_BIN:-$BUILD_DIR/src/provscan}
need_bin "$P"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(bench_threads)
bench_refs "$DATA" "$work/refs.txt"
sed "s|^|$DATA/|" "$work/refs.txt" >"$work/refs-abs.txt"
find "$QDIR" -maxdepth 1 -type f ! -name '*.csv' | LC_ALL=C sort >"$work/queries.txt"

now() { date +%s.%N; }
"$P" index create "$work/idx"
t0=$(now)
"$P" index add --quiet --jobs "$threads" --meta "$DATA/corpus.csv" --files-from "$work/refs-abs.txt" "$work/idx"
t1=$(now)
# Every reference within PDQ distance 256 is listed (top 10), so the metric sees the whole score range.
rc=0
"$P" batch --quiet --jobs "$threads" --top 10 --max-distance 256 "$work/idx" \
    --input "$work/queries.txt" --output "$work/out.jsonl" || rc=$?
[ "$rc" -le 1 ] || { echo "provscan batch failed ($rc)" >&2; exit 1; }
t2=$(now)

python3 - "$work/out.jsonl" "$DATA" "$OUT" <<'PY'
import csv, json, os, sys
out_jsonl, data, out_csv = sys.argv[1:4]
prefix = os.path.abspath(data).rstrip("/") + "/"
with open(out_csv, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["query", "reference", "score"])
    for line in open(out_jsonl):
        rec = json.loads(line)
        q = os.path.basename(rec["query"])
        for m in rec.get("matches", []):
            ref = m["work"]["path"]
            if ref.startswith(prefix):
                ref = ref[len(prefix):]
            w.writerow([q, ref, repr(m["score"])])  # full precision: rounding would create ties
PY

nrefs=$(wc -l <"$work/refs.txt")
nq=$(wc -l <"$work/queries.txt")
python3 - "$TIMING" "$t0" "$t1" "$t2" "$nrefs" "$nq" "$threads" <<'PY'
import json, sys
path, t0, t1, t2, nrefs, nq, threads = sys.argv[1], *map(float, sys.argv[2:5]), *map(int, sys.argv[5:8])
json.dump({
    "method": "provscan",
    "description": "provscan index add + batch --top 10 --max-distance 256 (global PDQ + local features); score = calibrated probability of a copy",
    "threshold": 0.5,
    "threads": threads, "n_refs": nrefs, "n_queries": nq,
    "index_seconds": t1 - t0, "index_images_per_s": nrefs / max(t1 - t0, 1e-9),
    "query_seconds": t2 - t1, "query_images_per_s": nq / max(t2 - t1, 1e-9),
}, open(path, "w"), indent=1)
PY

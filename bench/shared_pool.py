#!/usr/bin/env python3
# shared_pool.py — the (source picture, named reference) pairs to judge for shared content: every method's wrong top predictions, mapped to the pictures each query was made from.
#
# usage: shared_pool.py DATA_DIR GROUNDTRUTH.csv OUT_PAIRS.tsv PREDICTIONS.csv [PREDICTIONS.csv ...] [--top K]
#
# A query's sources are its work (`reference`) and the `src=` and `bg=` files of its params (outsiders,
# hard negatives). For each method, the K best-scoring references it names for a query (K = 5), other
# than the query's own work, are paired with each source. bench/peers/shared_content.cpp judges them.
import csv
import os
import sys


def main(argv):
    top = 5
    if "--top" in argv:
        i = argv.index("--top")
        top = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 5:
        sys.exit("usage: shared_pool.py DATA_DIR GROUNDTRUTH.csv OUT_PAIRS.tsv PREDICTIONS.csv... [--top K]")
    data, gt_path, out_path, preds = argv[1], argv[2], argv[3], argv[4:]

    def locate(name):
        for d in ("outsiders", "hardneg", "corpus"):
            if os.path.exists(os.path.join(data, d, name)):
                return d + "/" + name
        return None

    sources, truth = {}, {}
    for r in csv.DictReader(open(gt_path, newline="")):
        s = [r["reference"]] if r["reference"] else []
        for kv in (r.get("params") or "").split(";"):
            k, _, v = kv.partition("=")
            if k in ("src", "bg") and v:
                p = locate(v)
                if p:
                    s.append(p)
        sources[r["query"]] = s
        truth[r["query"]] = r["reference"]
    pairs = set()
    for path in preds:
        best = {}
        for r in csv.DictReader(open(path, newline="")):
            q, ref = r["query"], r["reference"]
            if q not in sources or ref == truth[q]:
                continue
            try:
                score = float(r["score"])
            except ValueError:
                continue
            best.setdefault(q, {})
            if score > best[q].get(ref, float("-inf")):
                best[q][ref] = score
        for q, refs in best.items():
            for ref, _ in sorted(refs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
                for s in sources[q]:
                    pairs.add((s, ref))
    with open(out_path, "w") as f:
        for s, ref in sorted(pairs):
            f.write(f"{s}\t{ref}\n")
    print(f"shared_pool: {len(pairs)} pairs from {len(preds)} prediction files", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)

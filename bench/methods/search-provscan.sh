#!/usr/bin/env bash
# search-provscan.sh — the Hamming-search engine "provscan" for bench/run's search-speed table: runs bench/search_speed.
#
# Called by bench/run with faiss_search's arguments (see bench/methods/README.md, "Search-speed engines"):
#   search-provscan.sh --codes C.codes --queries Q.queries --radius 31 --repeat R --mode both \
#                      --threads 1 --batch-threads T --out PAIRS.txt --json OUT.json
# search_speed builds the MIH tables when ps_mih_choose says they beat brute force at this size and
# radius; every call then uses MIH or the blocked SIMD brute force, whichever its cost model picks
# (engine "auto"), exactly as the corpus index does. SEARCH_ENGINE=brute|mih forces one.
# Codes and tables are mapped read-only from files, as the index maps its segments (4 KiB page-cache
# pages); SEARCH_MEMORY=huge puts them in anonymous huge-page memory instead (MIH ~1.4x faster at 10^7).
set -euo pipefail
[ -n "${BUILD_DIR:-}" ] || { echo "search-provscan.sh: BUILD_DIR is not set" >&2; exit 2; }
bin=$BUILD_DIR/bench/search_speed
[ -x "$bin" ] || { echo "search-provscan.sh: missing $bin (not built?)" >&2; exit 3; }
exec "$bin" --engine "${SEARCH_ENGINE:-auto}" --memory "${SEARCH_MEMORY:-file}" "$@"

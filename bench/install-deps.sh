#!/bin/sh
# Installs what the provscan benchmark needs on Debian 12: the core build deps, then the bench-only packages (as root; idempotent).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

# Core build dependencies (libvips-dev, compiler, cmake, ...).
sh "$here/../scripts/install-deps.sh"

# Bench-only packages. Extend this list; one install pass covers everything.
#   fonts-dejavu-core : the fonts querygen renders captions and overlays with (pinned font = same pixels everywhere)
#   libvips-tools     : vips/vipsheader command-line tools, handy to inspect the data set by hand
#   g++, libopencv-dev, libopencv-contrib-dev : the OpenCV peers (img_hash PHash/BlockMean, ORB) in bench/peers/
#   libfaiss-dev      : the FAISS binary-index search peer (bench/peers/faiss_search.cpp)
#   gnuplot-nox       : the PNG plots of bench/RESULTS.md
#   hyperfine         : medians of repeated runs in the hashing-speed benchmark
#   jq                : bench/run reads the JSON the tools write
BENCH_PACKAGES="fonts-dejavu-core libvips-tools g++ libopencv-dev libopencv-contrib-dev libfaiss-dev gnuplot-nox
hyperfine jq"

missing=""
for p in $BENCH_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench/install-deps: missing packages:$missing (run as root, or install them with apt-get)" >&2
        exit 1
    fi
    echo "bench/install-deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

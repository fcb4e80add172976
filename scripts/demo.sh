#!/bin/sh
# Installs what is needed, builds provscan, and runs the main job on a built-in demo made from a Debian package.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
P=build/src/provscan
IMG=build/tests/imgtool   # small libvips helper that makes the edited copies

# The demo corpus: the 74 background pictures (photographs and drawings) shipped by Debian's
# "scratch" package, (c) 2011 MIT, CC BY-SA 3.0 — unpacked without installing the package.
demo=build/demo
if [ ! -d "$demo/pkg/usr/share/scratch/Media" ]; then
    mkdir -p "$demo/pkg"
    (cd "$demo" && apt-get download scratch 2>/dev/null && dpkg-deb -x scratch_*.deb pkg)
fi
media=$demo/pkg/usr/share/scratch/Media
version=$(dpkg-deb -f "$demo"/scratch_*.deb Version)

# Attribution for every work, as a user would import it with --meta (paths relative to the CSV).
{
    echo "path,title,author,license,source_url,note"
    (cd "$demo" && find pkg/usr/share/scratch/Media/Backgrounds -type f) | LC_ALL=C sort | while read -r f; do
        title=$(basename "$f" | sed 's/\.[^.]*$//; s/[-_]/ /g')
        echo "\"$f\",\"$title\",Massachusetts Institute of Technology (Scratch),CC-BY-SA-3.0,https://scratch.mit.edu,\"Debian package scratch $version\""
    done
} >"$demo/attribution.csv"

rm -rf "$demo/index"
echo "== provscan index: the corpus, with attribution"
$P index create "$demo/index"
$P index add --meta "$demo/attribution.csv" "$demo/index" "$media/Backgrounds"
$P index info "$demo/index"

# Queries: copies of one work made the ways people make them, and an image not in the corpus.
castle=$media/Backgrounds/Outdoors/castle.jpg
q=$demo/queries
rm -rf "$q" && mkdir -p "$q"
$IMG resize "$castle" "$q/castle-resized.jpg[Q=70]" 0.4
$IMG flip "$castle" "$q/castle-mirrored.png"
$IMG caption "$castle" "$q/castle-captioned.jpg" "When you find the perfect castle"
$IMG crop "$castle" "$q/castle-detail.jpg" 150 60 260 200
cp "$(find "$media/Costumes/Animals" -name '*.png' | LC_ALL=C sort | head -1)" "$q/not-in-corpus.png"

echo
echo "== provscan scan: which work does each query copy? (evidence pictures in $demo/evidence)"
$P scan --top 2 --evidence-dir "$demo/evidence" "$demo/index" "$q"/* || true

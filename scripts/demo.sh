#!/bin/sh
# Installs what is needed, builds provscan, and runs the main job on a built-in demo made from a Debian package.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if ! command -v vips >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "demo: needs the 'vips' tool (apt-get install libvips-tools)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libvips-tools
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
P=build/src/provscan

# Demo corpus: the background photographs shipped by Debian's "scratch" package (CC BY-SA 2.0,
# MIT Media Lab), unpacked without installing the package.
demo=build/demo
if [ ! -d "$demo/pkg/usr/share/scratch" ]; then
    mkdir -p "$demo/pkg"
    (cd "$demo" && apt-get download scratch >/dev/null && dpkg-deb -x scratch_*.deb pkg)
fi
photos=$demo/pkg/usr/share/scratch/Media/Backgrounds
castle=$photos/Outdoors/castle.jpg
mkdir -p "$demo/queries"
vips resize "$castle" "$demo/queries/castle-small.jpg[Q=70]" 0.4
vips flip "$castle" "$demo/queries/castle-mirrored.png" horizontal
lake=$photos/Nature/lake.jpg

echo "== provscan hash: fingerprints of a few demo photos (PDQ, quality, pHash, dHash, size, orientation, path)"
$P hash "$castle" "$lake" "$photos/Nature/canyon.jpg" "$photos/Indoors/kitchen.jpg"
echo
echo "== provscan compare: the castle photo against a resized, a mirrored and an unrelated image"
for q in "$demo/queries/castle-small.jpg" "$demo/queries/castle-mirrored.png" "$lake"; do
    $P compare "$q" "$castle"
    echo
done

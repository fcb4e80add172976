#!/bin/sh
# Builds the provscan benchmark data set (corpus, outsiders, hard negatives, JPEG photos, distractors) from Debian packages.
#
# usage: bench/data/make-data.sh [--quick|--full] [--jobs N]
#
# Packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` under $BENCH_WORK/pkgs
# (nothing is installed system-wide); the data set goes to $BENCH_WORK/data.  BENCH_WORK defaults to
# bench/work (git-ignored).  Re-runs reuse the downloads and the image-feature cache and only write
# files that are missing; files no longer selected are removed.  Delete $BENCH_WORK/pkgs to pick up
# newer package versions.  Quick and full select with the same seed, and every quick role (corpus,
# outsiders, hard negatives) is a subset of the same role in full.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
data_args make-data 2,12p "$@"
BENCH_DIR=$(dirname "$HERE")
BENCH_WORK=${BENCH_WORK:-$BENCH_DIR/work}
PKGDIR=$BENCH_WORK/pkgs
DATA=$BENCH_WORK/data
SEED=${DATA_SEED:-20240601}
export LC_ALL=C
t_start=$(date +%s)

lock_bench_work make-data

# Packages reserved for an independent evaluation: never used here.
RESERVED="plasma-workspace-wallpapers gnome-backgrounds mate-backgrounds ukui-wallpapers lomiri-wallpapers*
xfdesktop4-data desktop-base python3-skimage opencv-doc wesnoth-1.16-data stellarium-data supertux-data
tuxpaint-data tuxpaint-stamps-default"

# ------------------------------------------------------------------------------------------------
# Selection rules.  One line per rule:
#   id  package  kind  quick-quota  full-quota  flags  include-ERE  exclude-ERE|-  group
# kind: photo | art | texture (reporting and outsider balance only).
# quotas: corpus works taken from this rule (quick is a prefix of full).
# flags: h = may be a hard negative, o = may be an outsider, d = distractor-only rule (full mode), - = none.
# Several files of one work (sizes, aspect ratios, logo variants) are narrowed to one by the include ERE.
# Files that share real content with another package's work are excluded, so that no outsider or hard
# negative is in fact a copy of a corpus work: mate-screensaver's cosmos "whirlpool" is the same M51
# photograph as tuxmath's background 7; openclipart's "water_fight_ganson" reuses another drawing of
# the set; dlib's "johns" and video frames are different frames of the same footage (same background),
# so they are kept out of the hard negatives.
# group: how "similar subject" is decided for hard negatives: pkg | dir | stem (dir + alphabetic
#        file-name prefix, e.g. canyon3.jpg -> canyon) | none.
# The EREs match the path inside the package (no leading slash).
RULES='
es-land     endless-sky-data            photo  24 200 ho ^usr/share/games/endless-sky/images/land/[^/]+\.jpg$ - stem
es-scene    endless-sky-data            art     2  12 ho ^usr/share/games/endless-sky/images/scene/[^/]+\.(jpg|png)$ - pkg
es-sprite   endless-sky-data            art     3  40 ho ^usr/share/games/endless-sky/images/(ship|planet|star)/[^/]+\.png$ - dir
krank       krank                       photo   4  22 ho ^usr/share/games/krank/levels/unera-backgrounds/[^/]+\.jpg$ - pkg
kphotoalbum kphotoalbum                 photo   4  22 ho ^usr/share/kphotoalbum/demo/[^/]+\.jpg$ - pkg
scratch     scratch                     photo   4  35 ho ^usr/share/scratch/Media/Backgrounds/.+\.(jpg|png|gif)$ - dir
dlib-faces  libdlib19.1                 photo   2  12 ho ^usr/share/doc/libdlib19.1/examples/faces/[^/]+\.jpg$ - dir
dlib-johns  libdlib19.1                 photo   3   5 -  ^usr/share/doc/libdlib19.1/examples/johns/.+\.jpg$ - dir
dlib-video  libdlib19.1                 photo   1   1 -  ^usr/share/doc/libdlib19.1/examples/video_frames/frame_000(100|160|220)\.jpg$ - dir
labelme     labelme-examples            photo   2   6 ho /data_annotated/[^/]+\.jpg$ - pkg
tuxmath     tuxmath-data                photo   2   6 ho ^usr/share/tuxmath/images/backgrounds/[^/]+\.jpg$ - pkg
cosmos      mate-screensaver-common     photo   2   6 ho ^usr/share/backgrounds/cosmos/[^/]+\.jpg$ whirlpool pkg
lifeograph  lifeograph                  photo   2   6 ho ^usr/share/net\.sourceforge\.Lifeograph/backgrounds/[^/]+\.jpg$ - pkg
lxqt-photo  lxqt-themes                 photo   2   8 ho ^usr/share/lxqt/wallpapers/((Valendas|appleflower|beam|butterfly|cloud|drop|flowers)\.png|[^/]+\.jpg)$ waves-purple-logo pkg
lxqt-art    lxqt-themes                 art     1   4 o  ^usr/share/lxqt/wallpapers/(kde-plasma|lxqt-origami-green|plasma_arch|simple_blue_widescreen|triangles|waves-logo)\.png$ - pkg
sway        sway-backgrounds            art     1   1 -  ^usr/share/backgrounds/sway/Sway_Wallpaper_Blue_1920x1080\.png$ - none
edu-space   debian-edu-artwork-spacefun art     1   1 -  /wallpaper/contents/images/1920x1080\.svg$ - none
edu-emerald debian-edu-artwork-emerald  art     1   1 -  /wallpaper/contents/images/1920x1080\.svg$ - none
edu-waves   debian-edu-artwork-softwaves art    1   1 -  /wallpaper/contents/images/1920x1080\.svg$ - none
pysiogame   pysiogame                   art    30 300 ho ^usr/share/games/pysiogame/res/images/art4apps/.+\.jpg$ - dir
openclipart openclipart-png             art    90 800 ho ^usr/share/openclipart/png/(people|recreation|animals|food|transportation|plants|buildings|unsorted|geography|decorations|education|office|tools|science|electronics|containers|special)/.+\.png$ water_fight_ganson dir
propaganda  propaganda-debian           art     3  16 ho ^usr/share/wallpapers/[^/]+\.(JPG|jpg)$ - pkg
kodi        kodi-data                   art     2  10 o  ^usr/share/kodi/(media/splash\.jpg|addons/skin\.[a-z]+/(extras/backgrounds|resources)/[^/]+\.jpg)$ screenshot pkg
mahjongg    kdegames-mahjongg-data-kf5  art     1   4 o  ^usr/share/kmahjongglib/backgrounds/[^/]+\.svgz$ - pkg
mypaint     mypaint-data-extras         texture 0   0 o  ^usr/share/mypaint/backgrounds/.+\.png$ - pkg
oc-other    openclipart-png             art     0   0 d  ^usr/share/openclipart/png/(computer|shapes|signs_and_symbols|logos|buttons)/.+\.png$ - none
scratch-cos scratch                     art     0   0 d  ^usr/share/scratch/Media/Costumes/.+\.(png|jpg|gif)$ - none
pysio-other pysiogame                   art     0   0 d  ^usr/share/games/pysiogame/res/images/.+\.(png|jpg)$ /art4apps/ none
tux-other   tuxmath-data                art     0   0 d  ^usr/share/tuxmath/images/.+\.(png|jpg)$ /backgrounds/ none
gimp-help   gimp-help-en                art     0   0 d  ^usr/share/gimp/2\.0/help/en/images/.+\.(png|jpg)$ - none
'

# JPEG photographs for the hashing-speed benchmark (copied byte for byte; see dataprep for re-encoding).
#   id  package  max-files  include-ERE
PHOTO_RULES='
krank       krank                   14 ^usr/share/games/krank/levels/unera-backgrounds/[^/]+\.jpg$
cosmos      mate-screensaver-common  9 ^usr/share/backgrounds/cosmos/[^/]+\.jpg$
lxqt        lxqt-themes              4 ^usr/share/lxqt/wallpapers/(Butterfly-Kenneth-Wimer|after-the-rain|fog|this-is-not-windows)\.jpg$
lifeograph  lifeograph               8 ^usr/share/net\.sourceforge\.Lifeograph/backgrounds/[^/]+\.jpg$
labelme     labelme-examples         6 /data_annotated/[^/]+\.jpg$
tuxmath     tuxmath-data             6 ^usr/share/tuxmath/images/backgrounds/[^/]+\.jpg$
kphotoalbum kphotoalbum              8 ^usr/share/kphotoalbum/demo/[^/]+\.jpg$
es-land     endless-sky-data         6 ^usr/share/games/endless-sky/images/land/[^/]+\.jpg$
dlib        libdlib19.1              5 ^usr/share/doc/libdlib19.1/examples/(faces|video_frames)/[^/]+\.jpg$
scratch     scratch                  4 ^usr/share/scratch/Media/Backgrounds/(Outdoors|Nature)/[^/]+\.jpg$
'

# Attribution for packages whose copyright file is not machine-readable (DEP-5 files are parsed).
#   package | author | licence
OVERRIDES='
openclipart-png|Open Clip Art Library contributors (author in the file name)|public-domain
krank|Thorsten Kohnhorst; Slava Anishenko|public-domain
kphotoalbum|KPhotoAlbum developers|GPL-2+
propaganda-debian|Bowie J. Poag, Naru Sundar / PROPAGANDA|GPL-2+
'

# ------------------------------------------------------------------------------------------------
# quick mode does not need the packages that only feed distractors
packages=$(printf '%s\n' "$RULES" | awk -v m="$MODE" 'NF>=9 && (m == "full" || $6 != "d") {print $2}' | sort -u)

for p in $packages; do
    for r in $RESERVED; do
        case "$p" in
            $r) echo "make-data: package $p is reserved for the independent evaluation" >&2; exit 1 ;;
        esac
    done
done

mkdir -p "$PKGDIR/debs" "$PKGDIR/root" "$DATA" "$BENCH_WORK/bin" "$BENCH_WORK/cache"

# 1. download and unpack (cached)
dl_bytes=0
for p in $packages; do
    deb=$(ls "$PKGDIR/debs/${p}_"*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        echo "make-data: downloading $p" >&2
        if ! (cd "$PKGDIR/debs" && apt-get download -q "$p" >/dev/null 2>"$PKGDIR/debs/.err"); then
            if [ "$(id -u)" -eq 0 ]; then
                apt-get update -q >/dev/null
                (cd "$PKGDIR/debs" && apt-get download -q "$p" >/dev/null)
            else
                cat "$PKGDIR/debs/.err" >&2
                echo "make-data: apt-get download $p failed (try 'apt-get update' as root)" >&2
                exit 1
            fi
        fi
        deb=$(ls "$PKGDIR/debs/${p}_"*.deb | head -n 1)
        dl_bytes=$((dl_bytes + $(stat -c %s "$deb")))
    fi
    stamp="$PKGDIR/root/$p.stamp"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(basename "$deb")" ]; then
        rm -rf "$PKGDIR/root/$p"
        mkdir -p "$PKGDIR/root/$p"
        dpkg-deb -x "$deb" "$PKGDIR/root/$p"
        basename "$deb" >"$stamp"
    fi
done
[ "$dl_bytes" -gt 0 ] && echo "make-data: downloaded $((dl_bytes / 1048576)) MiB" >&2

# 2. package table (version, source URL, copyright file, attribution overrides) and PACKAGES.txt
pkgtsv=$BENCH_WORK/cache/packages.tsv
: >"$pkgtsv"
{
    echo "# Debian packages used by the provscan benchmark data set ($MODE mode), made by bench/data/make-data.sh"
    printf '%-30s %-28s %10s  %s\n' package version deb-bytes homepage
} >"$DATA/PACKAGES.txt"
total=0
for p in $packages; do
    deb=$(ls "$PKGDIR/debs/${p}_"*.deb | head -n 1)
    ver=$(dpkg-deb -f "$deb" Version)
    home=$(dpkg-deb -f "$deb" Homepage)
    [ -n "$home" ] || home="debian:$p"
    size=$(stat -c %s "$deb")
    total=$((total + size))
    ov=$(printf '%s\n' "$OVERRIDES" | awk -F'|' -v p="$p" '$1==p {print $2 "\t" $3}')
    [ -n "$ov" ] || ov="$(printf '\t')"
    printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$ver" "$home" "$PKGDIR/root/$p/usr/share/doc/$p/copyright" "$ov" >>"$pkgtsv"
    printf '%-30s %-28s %10s  %s\n' "$p" "$ver" "$size" "$home" >>"$DATA/PACKAGES.txt"
done
printf '%-30s %-28s %10s\n' total "" "$total" >>"$DATA/PACKAGES.txt"

# 3. candidate lists
candtsv=$BENCH_WORK/cache/candidates.tsv
phototsv=$BENCH_WORK/cache/photos.tsv
list_files() { # package include-ERE exclude-ERE
    (cd "$PKGDIR/root/$1" && find . -type f | sed 's|^\./||') | grep -E -- "$2" |
        { if [ "$3" = - ]; then cat; else grep -vE -- "$3" || true; fi; } | sort
}
: >"$candtsv"
printf '%s\n' "$RULES" | while read -r id pkg kind qq qf flags inc exc group; do
    [ -n "$id" ] || continue
    [ "$MODE" = full ] || [ "$flags" != d ] || continue # distractor-only rules: full mode
    list_files "$pkg" "$inc" "$exc" | while IFS= read -r rel; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$pkg" "$kind" "$group" "$qq" "$qf" "$flags" \
            "$PKGDIR/root/$pkg/$rel" "$rel"
    done >>"$candtsv"
done
: >"$phototsv"
printf '%s\n' "$PHOTO_RULES" | while read -r id pkg cap inc; do
    [ -n "$id" ] || continue
    list_files "$pkg" "$inc" - | while IFS= read -r rel; do
        printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$pkg" "$cap" "$PKGDIR/root/$pkg/$rel" "$rel"
    done >>"$phototsv"
done
echo "make-data: $(wc -l <"$candtsv") candidate files, $(wc -l <"$phototsv") JPEG photo candidates" >&2

# 4. the selection tool (plain C on libvips; rebuilt when its source changes)
tool=$BENCH_WORK/bin/dataprep
if [ ! -x "$tool" ] || [ "$HERE/dataprep.c" -nt "$tool" ]; then
    echo "make-data: compiling dataprep" >&2
    # shellcheck disable=SC2046
    ${CC:-cc} -std=c11 -O2 -Wall -Wextra -ffp-contract=off -fopenmp "$HERE/dataprep.c" -o "$tool.tmp" \
        $(pkg-config --cflags --libs vips) -lm
    mv "$tool.tmp" "$tool"
fi

# 5. select and write
"$tool" --packages "$pkgtsv" --candidates "$candtsv" --photos "$phototsv" --out "$DATA" --mode "$MODE" \
    --cache "$BENCH_WORK/cache/features.bin" --seed "$SEED" --jobs "$JOBS"

# 6. summary
{
    echo
    echo "# data set summary ($MODE): files per folder"
    for d in corpus outsiders hardneg photos-jpeg distractors; do
        n=$(find "$DATA/$d" -type f 2>/dev/null | wc -l)
        s=$(du -sk "$DATA/$d" 2>/dev/null | cut -f1)
        printf '%-14s %6d files %8d KiB\n' "$d" "$n" "${s:-0}"
    done
    echo "# corpus works per rule and kind"
    awk -F'\t' 'NR>1 && $1=="corpus" {n[$2 " " $3]++} END {for (k in n) printf "  %-28s %5d\n", k, n[k]}' \
        "$DATA/selection.tsv" | sort
} >>"$DATA/PACKAGES.txt"
sed -n '/# data set summary/,$p' "$DATA/PACKAGES.txt" >&2
echo "make-data: $MODE data ready in $DATA ($(($(date +%s) - t_start)) s)" >&2

#!/bin/sh
# check-aarch64.sh — cross-builds provscan for 64-bit Arm and runs its whole test suite under qemu-user (Debian 12 x86-64, as root).
#
# usage: scripts/check-aarch64.sh [--keep-arch]
#
# What it does, and what it changes on the machine:
#  - installs the host packages gcc-aarch64-linux-gnu and qemu-user (apt-get);
#  - adds arm64 as a foreign dpkg architecture for the time of the run, so that apt can download
#    arm64 packages (removed again at the end unless --keep-arch, or unless it was already there);
#  - downloads the arm64 builds of provscan's dependencies and everything they depend on, and
#    unpacks them under build-aarch64/sysroot with dpkg-deb -x: nothing arm64 is installed;
#  - registers qemu-aarch64 with binfmt_misc (until the next reboot), so that the programs the build
#    and the CLI tests start (the model embedder, provscan itself) run as they would on Arm;
#  - configures build-aarch64/build with cmake/aarch64-linux-gnu.cmake, builds, and runs ctest.
# Emulation makes the suite about 10 times slower than natively (9-10 minutes on 2 cores).
set -eu
cd "$(dirname "$0")/.."
KEEP_ARCH=0
for a in "$@"; do
    case "$a" in
    --keep-arch) KEEP_ARCH=1 ;;
    -h | --help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-aarch64: unknown option $a" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "check-aarch64: run as root (it installs a cross compiler and qemu-user)" >&2; exit 1; }
WORK=$PWD/build-aarch64
ROOT=$WORK/sysroot
BUILD=$WORK/build
export DEBIAN_FRONTEND=noninteractive

missing=""
for p in gcc-aarch64-linux-gnu qemu-user cmake pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

# The arm64 sysroot: the same -dev packages scripts/install-deps.sh installs, with their whole
# dependency closure. Names apt lists without an architecture are Architecture: all (headers,
# protocol files); the C library's development files come from the cross compiler instead.
DEV="libvips-dev libjpeg62-turbo-dev libpng-dev libsqlite3-dev libssl-dev libjansson-dev libglib2.0-dev
libcmocka-dev libgomp1"
if [ ! -f "$ROOT/.complete" ]; then
    added_arch=0
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
        added_arch=1
    fi
    apt-get update -q
    rm -rf "$WORK/debs" "$ROOT"
    mkdir -p "$WORK/debs" "$ROOT"
    # shellcheck disable=SC2046
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances $(for p in $DEV; do echo "$p:arm64"; done) | grep -E '^[a-z0-9]' | sort -u > "$WORK/closure.txt"
    grep ':arm64$' "$WORK/closure.txt" |
        grep -vxE '(libc6-dev|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev):arm64' > "$WORK/download.txt"
    grep -v ':' "$WORK/closure.txt" | xargs apt-cache show --no-all-versions 2>/dev/null |
        awk '/^Package:/ { p = $2 } /^Architecture: all$/ { print p }' | sort -u >> "$WORK/download.txt"
    echo "check-aarch64: downloading $(wc -l < "$WORK/download.txt") arm64 packages" >&2
    (cd "$WORK/debs" && xargs -n 40 apt-get download -q < "$WORK/download.txt" > /dev/null)
    for d in "$WORK"/debs/*.deb; do
        dpkg-deb -x "$d" "$ROOT"
    done
    touch "$ROOT/.complete"
    if [ "$added_arch" = 1 ] && [ "$KEEP_ARCH" = 0 ]; then
        dpkg --remove-architecture arm64
        apt-get update -q > /dev/null
    fi
fi

# Programs built for Arm, started by the build or by the tests, run through qemu.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    sed 's/:[A-Z]*$/:P/' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi

export PROVSCAN_AARCH64_SYSROOT="$ROOT" QEMU_LD_PREFIX="$ROOT"
jobs=$(nproc)
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPROVSCAN_BUILD_BENCH=OFF
cmake --build "$BUILD" -j "$jobs"
"$BUILD/src/provscan" --version
(cd "$BUILD" && ctest --output-on-failure -j "$jobs")
echo "check-aarch64: all tests passed on aarch64 (qemu-user)"

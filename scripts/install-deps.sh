#!/bin/sh
# Installs the Debian 12 packages provscan needs to build, test and run (as root; idempotent).
set -eu

PACKAGES="build-essential cmake pkg-config git ca-certificates
libvips-dev libjpeg62-turbo-dev libpng-dev libsqlite3-dev libssl-dev libjansson-dev libglib2.0-dev
libcmocka-dev python3"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages:$missing (run as root, or install them with apt-get)" >&2
        exit 1
    fi
    echo "install-deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

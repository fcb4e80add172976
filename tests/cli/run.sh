#!/usr/bin/env bash
# run.sh — end-to-end tests of the provscan command: exit codes, messages, JSON Lines schema.
# Usage: run.sh PROVSCAN_BINARY TEST_DATA_DIR
set -u
BIN=$1
DATA=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/provscan-cli-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export NO_COLOR=1
failures=0
tests=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# run NAME EXPECTED_EXIT CMD... : runs CMD, keeps stdout/stderr in $WORK/NAME.{out,err}
run() {
    local name=$1 want=$2; shift 2
    tests=$((tests + 1))
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "$name: exit $got, expected $want"; sed 's/^/  stderr: /' "$WORK/$name.err" >&2
    fi
}
expect_in() { # expect_in NAME STREAM PATTERN
    grep -q -- "$3" "$WORK/$1.$2" || fail "$1: $2 lacks '$3'"
}
lines() { wc -l <"$WORK/$1.$2" | tr -d ' '; }
json_check() { # json_check NAME PYTHON-EXPR-OVER-LIST-OF-OBJECTS
    python3 - "$WORK/$1.out" "$2" <<'PY' || fail "$1: JSON check failed: $2"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = eval(sys.argv[2], {"objs": objs})
sys.exit(0 if ok else 1)
PY
}

IMG=$DATA/pdq-vectors/images/pdq-data
GOOD1=$IMG/bridge-mods/aaa-orig.jpg
GOOD2=$IMG/reg-test-input/pen-and-coaster.png
SMALL=$IMG/bridge-mods/shrink-a-lot.jpg
MIRROR=$IMG/reg-test-input/dih/bridge-6-flipy.jpg

# Bad inputs made on the spot.
: >"$WORK/empty.jpg"
echo "just some text" >"$WORK/text.jpg"
head -c 60000 "$GOOD1" >"$WORK/truncated.jpg"
mkdir "$WORK/a-directory"
# a JPEG 2000 signature: libvips' loader for it is one marked untrusted, which provscan blocks
printf '\000\000\000\014jP  \r\n\207\n0000000000000000' >"$WORK/blocked.jp2"
python3 - "$WORK/bomb.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
PY
python3 - "$GOOD2" "$WORK/badcrc.png" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.index(b"IDAT"); n = int.from_bytes(d[i-4:i], "big"); d[i + 4 + n] ^= 0x5A
open(sys.argv[2], "wb").write(d)
PY

# --- global ---
run version 0 "$BIN" --version
expect_in version out "^provscan [0-9]"
expect_in version out "simd: "
expect_in version out "libvips"
run help 0 "$BIN" --help
expect_in help out "hash"
run no_args 2 "$BIN"
run unknown_cmd 2 "$BIN" frobnicate
expect_in unknown_cmd err "unknown command"

# --- hash ---
run hash_help 0 "$BIN" hash --help
expect_in hash_help out "Usage: provscan hash"
run hash_nofile 2 "$BIN" hash
run hash_badmode 2 "$BIN" hash --mode turbo "$GOOD1"
expect_in hash_badmode err "fast' or 'compatible"
run hash_badjobs 2 "$BIN" hash --jobs 0 "$GOOD1"

run hash_good 0 "$BIN" hash "$GOOD1" "$GOOD2"
[ "$(lines hash_good out)" = 2 ] || fail "hash_good: expected 2 lines"
[ "$(lines hash_good err)" = 0 ] || fail "hash_good: unexpected stderr"
expect_in hash_good out "1600x1004"

run hash_compat 0 "$BIN" hash --mode compatible "$GOOD1"
expect_in hash_compat out "^f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22	100	"

# Every kind of bad input: one clear line each on stderr, exit 1, good files still hashed.
BAD=("$WORK/empty.jpg" "$WORK/text.jpg" "$WORK/truncated.jpg" "$WORK/badcrc.png" "$WORK/bomb.png"
     "$WORK/a-directory" "$WORK/missing.jpg" "$WORK/blocked.jp2")
run hash_mixed 1 "$BIN" hash --jobs 2 "$GOOD1" "${BAD[@]}" "$GOOD2"
[ "$(lines hash_mixed out)" = 2 ] || fail "hash_mixed: the two good files must still be hashed"
[ "$(lines hash_mixed err)" = 8 ] || fail "hash_mixed: expected exactly one stderr line per bad file"
expect_in hash_mixed err "empty.jpg: empty file"
expect_in hash_mixed err "text.jpg: not an image"
expect_in hash_mixed err "truncated.jpg: truncated JPEG"
expect_in hash_mixed err "badcrc.png: "
expect_in hash_mixed err "bomb.png: 100000x100000 pixels exceeds the limit"
expect_in hash_mixed err "a-directory: is a directory"
expect_in hash_mixed err "missing.jpg: cannot open: No such file"
expect_in hash_mixed err "blocked.jp2: jp2k images are refused: .*PROVSCAN_ALLOW_UNTRUSTED_LOADERS=1"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    cp "$GOOD1" "$WORK/secret.jpg"; chmod 000 "$WORK/secret.jpg"; chmod 755 "$WORK"
    run hash_unreadable 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" hash "$WORK/secret.jpg" "$GOOD2"
    expect_in hash_unreadable err "secret.jpg: cannot open: Permission denied"
    [ "$(lines hash_unreadable out)" = 1 ] || fail "hash_unreadable: the readable file must still be hashed"
elif [ "$(id -u)" != 0 ]; then
    cp "$GOOD1" "$WORK/secret.jpg"; chmod 000 "$WORK/secret.jpg"
    run hash_unreadable 1 "$BIN" hash "$WORK/secret.jpg" "$GOOD2"
    expect_in hash_unreadable err "secret.jpg: cannot open: Permission denied"
fi

run hash_json 1 "$BIN" hash --json --dihedral "$GOOD1" "$WORK/text.jpg"
json_check hash_json 'len(objs) == 2 and objs[0]["ok"] and not objs[1]["ok"]'
json_check hash_json 'objs[0]["pdq"]["algorithm"] == "pdq" and objs[0]["pdq"]["version"] == 1 and objs[0]["pdq"]["mode"] == "fast"'
json_check hash_json 'len(objs[0]["pdq"]["hash"]) == 64 and 0 <= objs[0]["pdq"]["quality"] <= 100'
json_check hash_json 'objs[0]["phash"]["algorithm"] == "phash" and len(objs[0]["phash"]["hash"]) == 16'
json_check hash_json 'objs[0]["dhash"]["version"] == 1 and objs[0]["width"] == 1600 and objs[0]["height"] == 1004'
json_check hash_json 'len(objs[0]["pdq"]["dihedral"]) == 8 and objs[0]["orientation"] == 1 and objs[0]["orientation_applied"] is False'
json_check hash_json 'objs[1]["error"]["code"] == "not_an_image" and "text.jpg" in objs[1]["error"]["message"]'

# Same results whatever the number of threads and kernel set.
run hash_j1 0 "$BIN" hash --jobs 1 "$GOOD1" "$GOOD2" "$SMALL"
run hash_j2 0 "$BIN" hash --jobs 2 "$GOOD1" "$GOOD2" "$SMALL"
cmp -s "$WORK/hash_j1.out" "$WORK/hash_j2.out" || fail "hash: output depends on --jobs"
PROVSCAN_SIMD=scalar run hash_scalar 0 "$BIN" hash "$GOOD1" "$GOOD2" "$SMALL"
cmp -s "$WORK/hash_j1.out" "$WORK/hash_scalar.out" || fail "hash: scalar kernels differ"

# --- compare ---
run compare_help 0 "$BIN" compare --help
run compare_one 2 "$BIN" compare "$GOOD1"
run compare_same 0 "$BIN" compare "$GOOD1" "$IMG/bridge-mods/shrink-a-lot.jpg"
expect_in compare_same out "Verdict: match"
run compare_mirror 0 "$BIN" compare --json "$MIRROR" "$GOOD1"
json_check compare_mirror 'objs[0]["verdict"] == "match" and objs[0]["pdq"]["transform"] == "flipy"'
json_check compare_mirror 'objs[0]["pdq"]["distance_untransformed"] > 64'
run compare_other 0 "$BIN" compare "$GOOD1" "$GOOD2"
expect_in compare_other out "Verdict: different"
run compare_bad 1 "$BIN" compare "$GOOD1" "$WORK/truncated.jpg"
expect_in compare_bad err "truncated.jpg: truncated JPEG"

echo "$tests CLI tests, $failures failed"
[ "$failures" = 0 ]

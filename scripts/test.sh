#!/bin/sh
# Installs what is needed, builds provscan and its benchmark tools, runs the whole test suite, then again under ASan+UBSan.
set -eu
cd "$(dirname "$0")/.."
# The benchmark's tools are built and smoke-tested too (bench_smoke: a seconds-long run of the whole
# harness on synthetic data); its installer also installs the core dependencies.
bench/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROVSCAN_BUILD_BENCH=ON
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

# The same suite with AddressSanitizer and UndefinedBehaviorSanitizer. Leaks inside GLib and libvips'
# one-time type registration are listed in tests/lsan.supp; any other leak fails the run.
# Debug keeps assertions on; -O1 (as sanitizer builds usually are) because unoptimised SIMD
# intrinsics under ASan make the end-to-end tests many times slower without finding more.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DPROVSCAN_SANITIZE=address,undefined
cmake --build build-asan -j "$jobs"
(cd build-asan &&
 ASAN_OPTIONS=abort_on_error=0:detect_odr_violation=0 \
 LSAN_OPTIONS="suppressions=$(pwd)/../tests/lsan.supp:print_suppressions=0" \
 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
 ctest --output-on-failure -j "$jobs")
echo "test.sh: all tests passed (normal and sanitizer builds)"

#!/usr/bin/env bash
# Installs what is missing, builds (warnings as errors), and runs the whole
# test suite: the unit tests under AddressSanitizer and UBSan, then every
# test (unit, and the gdb/lldb integration tests) with ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"

# The sanitizer configuration: the codecs', policy's and targets' unit tests.
asan="${ASAN_BUILD_DIR:-$root/build-asan}"
cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDBGSTUB_SANITIZE=ON -DDBGSTUB_WERROR=ON >/dev/null
cmake --build "$asan" -j"$(nproc)" --target unit_tests
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$asan/tests/unit_tests"

# Fuzzing: every libFuzzer target briefly (clang build, ~10 s each, two at a
# time); fails on any crash. DBGSTUB_SKIP_FUZZ=1 skips it.
if [ "${DBGSTUB_SKIP_FUZZ:-0}" != 1 ]; then
  "$root/scripts/fuzz.sh" --ci
fi

# Debug: the suite checks behaviour, not speed, and -O0 builds in half the time.
BUILD_TYPE="${BUILD_TYPE:-Debug}" "$root/scripts/build.sh" -DDBGSTUB_WERROR=ON
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j2 --timeout 300

#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit
# tests, and the gdb/lldb/QEMU integration tests) with ctest, then the fuzzers briefly.
#
# The suite runs in one build that has AddressSanitizer and UBSan in it
# (Debug, warnings as errors): every dbgstub the integration tests start is
# instrumented, and any report from any of them fails the run, even when the
# test itself passed (reports go to files, collected below). The programs the
# tests debug are built plain (tests/CMakeLists.txt). One sanitized run
# instead of a plain one plus a sanitized one keeps CI inside its time; an
# ordinary build is `scripts/build.sh`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"

build="${BUILD_DIR:-$root/build}"
BUILD_DIR="$build" BUILD_TYPE=Debug "$root/scripts/build.sh" -DDBGSTUB_SANITIZE=ON -DDBGSTUB_WERROR=ON

reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"

status=0
(cd "$build" && ctest --output-on-failure -j2 --timeout 300) || status=$?

if compgen -G "$reports/*" >/dev/null; then
  echo "== sanitizer reports (these fail the run):"
  for f in "$reports"/*; do
    echo "--- $f"
    head -40 "$f"
  done
  status=1
fi

# The Debian package: a Release build in build-release/, made into a .deb,
# installed, checked and removed (scripts/package-check.sh). About 800 s on
# a loaded 2-core machine (a second, -O3 build), so not in every run:
# DBGSTUB_PACKAGE_CHECK=1 runs it here; the install rules' unit of it (the
# man page against --help, the example lab file) is in ctest.
if [ "${DBGSTUB_PACKAGE_CHECK:-0}" = 1 ]; then
  "$root/scripts/package-check.sh" || status=1
fi

# Fuzzing: every libFuzzer target briefly (clang build, ~10 s each, two at a
# time); fails on any crash. DBGSTUB_SKIP_FUZZ=1 skips it.
if [ "${DBGSTUB_SKIP_FUZZ:-0}" != 1 ]; then
  "$root/scripts/fuzz.sh" --ci || status=1
fi
exit "$status"

#!/usr/bin/env bash
# Installs what is missing for building dbgstub and connecting gdb (not the
# test suite's QEMU, LLDB, clang, GDB's testsuite: scripts/test.sh installs
# those), builds only dbgstub and the demo program, in a build folder of
# their own (build-demo/, or $BUILD_DIR), and serves the bundled demo
# program on 127.0.0.1:1234 (override with PORT=...).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh" demo
build="${BUILD_DIR:-$root/build-demo}"
# No tests configured: they need doctest and python3, which the demo does
# not. Debug (-O0 -g): half the compile time of RelWithDebInfo's -O2 -g
# (server/gdb/session.cpp: 8.4 s of CPU against 17.0 s), and the demo
# needs no speed. A unity build (CMake compiles each library's files a few
# at a time as one): asio's, spdlog's and the standard library's templates
# are instantiated once per batch instead of once per file. On 2 cores,
# packages installed, quiet machine: 171 s from the clone to serving without
# it (2026-12-07); with it not yet measured on a quiet machine (#26).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Debug}" -DDBGSTUB_TESTS=OFF \
  -DCMAKE_UNITY_BUILD=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target dbgstub demo
port="${PORT:-1234}"
demo="$build/examples/demo"
echo
echo "Connect from another terminal with:"
echo "  gdb $demo -ex 'target remote 127.0.0.1:$port'"
echo
exec "$build/server/dbgstub" "127.0.0.1:$port" "$demo"

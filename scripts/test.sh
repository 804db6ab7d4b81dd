#!/usr/bin/env bash
# Installs what is missing, builds (warnings as errors), and runs the whole
# test suite: unit tests and the gdb/lldb integration tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" -DDBGSTUB_WERROR=ON
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j2 --timeout 300

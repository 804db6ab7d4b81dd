#!/usr/bin/env bash
# Installs what is missing, builds, and serves the bundled demo program on
# 127.0.0.1:1234 (override with PORT=...).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
port="${PORT:-1234}"
demo="$root/build/examples/demo"
echo
echo "Connect from another terminal with:"
echo "  gdb $demo -ex 'target remote 127.0.0.1:$port'"
echo
exec "$root/build/server/dbgstub" "127.0.0.1:$port" "$demo"

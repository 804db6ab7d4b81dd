#!/usr/bin/env bash
# The raw floors (bench/floors.c): ptrace stop/resume via int3 + PTRACE_CONT,
# single-step, PTRACE_GETREGS, loopback TCP round trip, reading 64 MiB of
# another process. Usage: bench/floors.sh [--tiny]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d /tmp/dbgstub-floors.XXXXXX)"
trap 'rm -rf "$out"' EXIT
gcc -O2 -g -o "$out/floors" "$here/floors.c"
"$out/floors" "$@"

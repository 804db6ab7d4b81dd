#!/usr/bin/env bash
# The dbgstub benchmark (issue 8), one command:
#   bench/run.sh [--reps N] [--tiny] [--only W1,W2] [--stubs native,dbgstub,...]
#                [--size hits=N ...] [--json FILE] [--no-floors] [--per-hit] [-v]
# Builds dbgstub (unless $DBGSTUB names one) and the bench programs (gcc -O0 -g,
# into $BENCH_BUILD or a temporary folder), runs every workload through the
# real gdb/lldb against dbgstub, gdbserver, lldb-server and natively,
# alternating them run by run, and prints tables of medians; then the raw
# floors (bench/floors.c). --per-hit adds the packets and system calls per
# breakpoint hit (bench/perhit.py). --tiny: tiny sizes, once (smoke check).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

floors=1 per_hit=0 tiny=0 args=()
for a in "$@"; do
  case "$a" in
    --no-floors) floors=0 ;;
    --per-hit) per_hit=1 ;;
    --tiny) tiny=1; args+=("$a") ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; python3 "$here/bench.py" --help | sed -n '/^options:/,$p'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

if [[ -z "${DBGSTUB:-}" ]]; then
  BUILD_DIR="${BUILD_DIR:-$root/build}" "$root/scripts/build.sh" >&2
  DBGSTUB="${BUILD_DIR:-$root/build}/server/dbgstub"
fi
[[ -x "$DBGSTUB" ]] || { echo "run.sh: no dbgstub at $DBGSTUB" >&2; exit 2; }

out="${BENCH_BUILD:-}"
if [[ -z "$out" ]]; then
  out="$(mktemp -d /tmp/dbgstub-bench-build.XXXXXX)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
for src in "$here"/programs/*.c; do
  gcc -O0 -g -pthread -o "$out/$(basename "$src" .c)" "$src"
done
gcc -O2 -g -pthread -o "$out/floors" "$here/floors.c"

rc=0
python3 "$here/bench.py" --dbgstub "$DBGSTUB" --programs "$out" ${args[@]+"${args[@]}"} || rc=$?
if [[ $floors == 1 ]]; then
  if [[ $tiny == 1 ]]; then "$out/floors" --tiny || rc=$?; else "$out/floors" || rc=$?; fi
fi
if [[ $per_hit == 1 ]]; then
  python3 "$here/perhit.py" --dbgstub "$DBGSTUB" --programs "$out" || rc=$?
fi
exit $rc

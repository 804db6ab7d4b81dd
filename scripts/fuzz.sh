#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-14 into build-fuzz/
# and runs each for a time budget. Exits non-zero if any target crashes.
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--no-build] [-- libFuzzer args]
#
# Seeds come from tests/fuzz/corpus/<target>/ (left untouched); what the
# fuzzer finds on top accumulates in build-fuzz/corpus/<target>/, crash
# inputs go to build-fuzz/artifacts/, full logs to build-fuzz/logs/.
# Reproduce a crash with: build-fuzz/fuzz/<target> build-fuzz/artifacts/<file>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
all_targets=(fuzz_framer fuzz_parse_request fuzz_dispatcher)
seconds=60
targets=()
do_build=1
extra=()

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
    --target=*) targets+=("${1#*=}"); shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "fuzz.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "fuzz.sh: --seconds wants a positive integer" >&2; exit 2; }
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  # Accept "framer" as well as "fuzz_framer".
  [[ " ${all_targets[*]} " == *" $t "* || " ${all_targets[*]} " == *" fuzz_$t "* ]] ||
    { echo "fuzz.sh: unknown target '$t' (one of: ${all_targets[*]})" >&2; exit 2; }
done

if ((do_build)); then
  command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
  echo "== building fuzz targets in $build"
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DDBGSTUB_FUZZ=ON \
    -DCMAKE_BUILD_TYPE= -DCMAKE_C_FLAGS="-O1 -g" -DCMAKE_CXX_FLAGS="-O1 -g" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target fuzz_targets
fi

mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=()
summary=()
for t in "${targets[@]}"; do
  [[ "$t" == fuzz_* ]] || t="fuzz_$t"
  bin="$build/fuzz/$t"
  [ -x "$bin" ] || { echo "fuzz.sh: $bin is missing (drop --no-build?)" >&2; exit 2; }
  work="$build/corpus/$t"
  seeds="$root/tests/fuzz/corpus/${t#fuzz_}"
  mkdir -p "$work"
  dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  log="$build/logs/$t.log"
  echo "== $t: ${seconds}s (log: $log)"
  rc=0
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=4096 \
    -artifact_prefix="$build/artifacts/$t-" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  if [ -z "$runs" ]; then
    # Without the final stats (a crash), fall back to the last status line.
    runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  if done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1); then
    secs=$(sed -E 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/' <<<"$done_line")
    [ -n "$eps" ] || eps=$(( $(sed -E 's/^Done ([0-9]+) runs.*/\1/' <<<"$done_line") / (secs > 0 ? secs : 1) ))
  fi
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | tr -dc '0-9')
  line=$(printf '%-20s %10s exec/s %12s execs  cov %6s' "$t" "${eps:-?}" "${runs:-?}" "${cov:-?}")
  if ((rc != 0)); then
    line+="  CRASH (exit $rc)"
    failed+=("$t")
    echo "-- $t failed; end of its log:"
    grep -E 'ERROR:|SUMMARY:|runtime error|Test unit written|fuzz_dispatcher:' "$log" | head -20 || true
    tail -5 "$log"
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "crashes in: ${failed[*]}; inputs in $build/artifacts/" >&2
  exit 1
fi

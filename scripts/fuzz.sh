#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-14 into build-fuzz/
# and runs each for a time budget. Exits non-zero if any target crashes.
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--jobs J] [--workers W] [--ci] [--no-build] [-- libFuzzer args]
#
# Seeds come from tests/fuzz/corpus/<target>/ (left untouched); what the
# fuzzer finds on top accumulates in build-fuzz/corpus/<target>/, crash
# inputs go to build-fuzz/artifacts/, full logs to build-fuzz/logs/.
# Reproduce a crash with: build-fuzz/fuzz/<target> build-fuzz/artifacts/<file>
# --jobs J runs J targets at a time (default 1). --workers W runs W
# processes of each target on its corpus at once (libFuzzer's -jobs=W
# -workers=W; -runs then counts per worker, and the summary adds the
# workers' figures up; their logs are build-fuzz/logs/<target>.workers/).
# --ci is the CI's short
# run: every target for ${DBGSTUB_FUZZ_SECONDS:-10} s, two at a time, built
# into build-fuzz-ci/ at -O0 with line tables only (half the compile time
# of -O1 -g; stack traces keep file and line; fewer executions per second,
# which a 10 s smoke run can spare).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ci=0
all_targets=(fuzz_framer fuzz_parse_request fuzz_dispatcher fuzz_kd_framing fuzz_kd_manipulate fuzz_agent_expr)
seconds=
targets=()
do_build=1
extra=()
jobs=1
workers=1

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
    --target=*) targets+=("${1#*=}"); shift ;;
    --no-build) do_build=0; shift ;;
    --jobs) jobs="${2:?--jobs needs a value}"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
    --workers=*) workers="${1#*=}"; shift ;;
    --ci) ci=1; jobs=2; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "fuzz.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if ((ci)); then
  build="${FUZZ_BUILD_DIR:-$root/build-fuzz-ci}"
  cflags="-O0 -gline-tables-only"
  seconds="${seconds:-${DBGSTUB_FUZZ_SECONDS:-10}}"
else
  build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
  cflags="-O1 -g"
  seconds="${seconds:-60}"
fi
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "fuzz.sh: --seconds wants a positive integer" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ ]] && ((jobs > 0)) || { echo "fuzz.sh: --jobs wants a positive integer" >&2; exit 2; }
[[ "$workers" =~ ^[0-9]+$ ]] && ((workers > 0)) || { echo "fuzz.sh: --workers wants a positive integer" >&2; exit 2; }
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  # Accept "framer" as well as "fuzz_framer".
  [[ " ${all_targets[*]} " == *" $t "* || " ${all_targets[*]} " == *" fuzz_$t "* ]] ||
    { echo "fuzz.sh: unknown target '$t' (one of: ${all_targets[*]})" >&2; exit 2; }
done

if ((do_build)); then
  command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
  echo "== building fuzz targets in $build"
  build_start=$SECONDS
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DDBGSTUB_FUZZ=ON \
    -DCMAKE_BUILD_TYPE= -DCMAKE_C_FLAGS="$cflags" -DCMAKE_CXX_FLAGS="$cflags" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target fuzz_targets
  echo "== fuzz build took $((SECONDS - build_start)) s"
fi

mkdir -p "$build/artifacts" "$build/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# Runs one target; its exit status goes to $build/logs/<target>.rc.
run_target() {
  local t="$1" bin="$build/fuzz/$1" work="$build/corpus/$1" seeds="$root/tests/fuzz/corpus/${1#fuzz_}"
  local log="$build/logs/$1.log" rc=0
  mkdir -p "$work"
  local dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  local own=()
  # The framer's seeds are whole sessions of up to 2.5 KB, three passes
  # each; past 1 KB an input shows the framer nothing new (its packet limits
  # go up to 255 bytes besides the large ones, and runs between '$' and '#'
  # are copied whole) and halves the executions per second.
  [ "$t" = fuzz_framer ] && own+=(-max_len=1024)
  # fuzz_dispatcher's process target is real: qXfer:osdata:read:processes
  # walks /proc, which was most of its time on a machine with 78 processes.
  # In a PID namespace of its own (with its own /proc) it sees only its
  # child and itself: about twice the executions per second on the same
  # inputs, and it can't reach the host's processes. Where unshare is
  # refused (not root), it runs as before.
  local ns=()
  if [ "$t" = fuzz_dispatcher ] && unshare --pid --fork --mount-proc true 2>/dev/null; then
    ns=(unshare --pid --fork --mount-proc)
    echo "== $t runs in a PID namespace of its own (unshare --pid --fork --mount-proc)"
  fi
  if ((workers > 1)); then
    # libFuzzer writes each worker's log as fuzz-N.log in the current folder.
    local wdir="$build/logs/$t.workers"
    rm -rf "$wdir" && mkdir -p "$wdir"
    own+=(-jobs="$workers" -workers="$workers")
    (cd "$wdir" && "${ns[@]}" "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=4096 \
      -artifact_prefix="$build/artifacts/$t-" "${own[@]}" "${extra[@]}" "${dirs[@]}") >"$log" 2>&1 || rc=$?
    # The summary reads the workers' own logs (the launcher's copies a
    # worker's log only when it ends, so counting both counted twice).
  else
    "${ns[@]}" "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=4096 \
      -artifact_prefix="$build/artifacts/$t-" "${own[@]}" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  fi
  echo "$rc" >"$build/logs/$t.rc"
}

names=()
for t in "${targets[@]}"; do
  [[ "$t" == fuzz_* ]] || t="fuzz_$t"
  [ -x "$build/fuzz/$t" ] || { echo "fuzz.sh: $build/fuzz/$t is missing (drop --no-build?)" >&2; exit 2; }
  names+=("$t")
done

running=0
for t in "${names[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  echo "== $t: ${seconds}s (log: $build/logs/$t.log)"
  rm -f "$build/logs/$t.rc"
  run_target "$t" &
  running=$((running + 1))
done
wait || true

failed=()
summary=()
for t in "${names[@]}"; do
  log="$build/logs/$t.log"
  rc=$(cat "$build/logs/$t.rc" 2>/dev/null || echo 1)
  # Summed over the workers' final stats (one line each without --workers).
  stats=("$log")
  ((workers > 1)) && stats=("$build/logs/$t.workers"/fuzz-*.log)
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "${stats[@]}" | awk '{s+=$1} END {if (NR) print s}')
  eps=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "${stats[@]}" | awk '{s+=$1} END {if (NR) print s}')
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
  # A "slow-unit" artifact is no crash (libFuzzer keeps inputs that took
  # over 10 s, e.g. while a nice'd run was starved by a build).
  if ((rc != 0)) && ! grep -E 'ERROR:|runtime error|Test unit written' "$log" "${stats[@]}" | grep -qv 'slow-unit-' &&
     grep -q 'run interrupted' "${stats[@]}" "$log"; then
    line+="  INTERRUPTED (exit $rc, no crash)"
    failed+=("$t")
  elif ((rc != 0)); then
    line+="  CRASH (exit $rc)"
    failed+=("$t")
    echo "-- $t failed; end of its log:"
    grep -E 'ERROR:|SUMMARY:|runtime error|Test unit written|fuzz_[a-z_]*:' "$log" | head -20 || true
    tail -5 "$log"
  fi
  summary+=("$line")
done

echo
echo "== summary (${seconds}s per target, $jobs at a time$( ((workers > 1)) && echo ", $workers workers each, figures added up"))"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "crashed or interrupted: ${failed[*]}; crash inputs in $build/artifacts/" >&2
  exit 1
fi

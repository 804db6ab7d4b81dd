#!/usr/bin/env bash
# Conformance: run GDB's own DejaGnu testsuite against dbgstub (and, for
# comparison, against the system gdbserver) and compare the results.
#
# The testsuite comes from Debian's gdb-source package (the same version as
# the installed gdb); DejaGnu's runtest drives it with the
# native-extended-gdbserver board, which starts the stub as
#   STUB --once --multi localhost:PORT
# (and some gdb.server tests start it with other arguments), waits for
# "Listening on port", and ends it with "monitor exit".
#
# Usage: scripts/conformance.sh [OPTIONS]
#   --stub dbgstub|gdbserver|both   which stub(s) to test (default both)
#   --set NAME                      test set, repeatable (default gdb.server):
#                                     gdb.server  (alias: server) all of gdb.server
#                                     base        ~55 gdb.base files: breakpoints,
#                                                 watchpoints, stepping, signals,
#                                                 attach, fork, exec, kill, detach,
#                                                 registers, memory
#                                     threads     all of gdb.threads (long)
#                                     gdb.X/foo.exp  any single test file
#   --timeout SECS                  wall-clock limit of one set for one stub
#                                   (default 600); files not started by then are
#                                   listed as not run
#   --file-timeout SECS             limit of one test file (default 180)
#   --sequential                    with both stubs, run them one after the other
#                                   (default: both at once, one runtest each)
#   --no-run                        only (re)print the report of the last results
#   -h, --help
# Environment:
#   DBGSTUB=path            the dbgstub binary (default: $BUILD_DIR or build/,
#                           built with scripts/build.sh if missing)
#   GDBSERVER_BIN=path      the reference stub (default /usr/bin/gdbserver)
#   GDB=path                the gdb under test (default /usr/bin/gdb)
#   CONFORMANCE_DIR=dir     build folder (default /tmp/dbgstub-conformance)
#   DBGSTUB_EXTRA_ARGS=...  extra dbgstub options given by the wrapper
#   DBGSTUB_PACKET_LOG=1    log dbgstub's packets to CONFORMANCE_DIR/packets/
#                           (kept off the stub's terminal, which the tests read)
#   RUNTESTFLAGS=...        extra runtest arguments (e.g. --verbose)
#
# Results: CONFORMANCE_DIR/results/STUB/SET/gdb.{sum,log}; the table and the
# list of tests that pass with gdbserver but not with dbgstub are printed and
# saved to CONFORMANCE_DIR/results/report.txt (and report.json).
# Exit status: 0 when the runs completed (whatever they found), 1 on a setup
# error.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CONFORMANCE_DIR:-/tmp/dbgstub-conformance}"
gdb_bin="${GDB:-/usr/bin/gdb}"
gdbserver_bin="${GDBSERVER_BIN:-/usr/bin/gdbserver}"
stub_choice=both
sets=()
run_timeout=600
file_timeout=180
parallel=1
do_run=1

die() { echo "conformance: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --stub) stub_choice="${2:?--stub needs a value}"; shift 2 ;;
    --stub=*) stub_choice="${1#*=}"; shift ;;
    --set) sets+=("${2:?--set needs a value}"); shift 2 ;;
    --set=*) sets+=("${1#*=}"); shift ;;
    --timeout) run_timeout="${2:?}"; shift 2 ;;
    --timeout=*) run_timeout="${1#*=}"; shift ;;
    --file-timeout) file_timeout="${2:?}"; shift 2 ;;
    --file-timeout=*) file_timeout="${1#*=}"; shift ;;
    --sequential) parallel=0; shift ;;
    --no-run) do_run=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ ${#sets[@]} -gt 0 ] || sets=(gdb.server)
case "$stub_choice" in
  dbgstub) stubs=(dbgstub) ;;
  gdbserver) stubs=(gdbserver) ;;
  both) stubs=(gdbserver dbgstub) ;;
  *) die "--stub must be dbgstub, gdbserver or both" ;;
esac

# ---------------------------------------------------------------- test sets
# gdb.base files about breakpoints, watchpoints, stepping, signals, attach,
# fork, exec, kill, detach, registers and memory. Listed explicitly so that
# results stay comparable from run to run.
base_files=(
  # breakpoints
  break.exp break-always.exp break-caller-line.exp break-entry.exp
  break-idempotent.exp breakpoint-shadow.exp condbreak.exp hbreak.exp
  hbreak2.exp
  # watchpoints
  watchpoint.exp watchpoints.exp watch-cond.exp watch-read.exp
  watchpoint-hw.exp watchpoint-hw-hit-once.exp watch-bitfields.exp
  watchpoint-unaligned.exp watch-vfork.exp
  # stepping and run control
  step-test.exp step-line.exp step-break.exp step-bt.exp step-over-exit.exp
  step-over-syscall.exp finish.exp until.exp advance.exp jump.exp return.exp
  starti.exp ending-run.exp interrupt.exp
  # signals
  signals.exp sigall.exp sigstep.exp sigbpt.exp siginfo.exp siginfo-obj.exp
  signull.exp sigrepeat.exp catch-signal.exp exitsignal.exp
  # attach / detach / kill
  attach.exp attach-twice.exp detach.exp kill-after-signal.exp
  killed-outside.exp kill-detach-inferiors-cmd.exp
  # fork / exec
  foll-fork.exp foll-vfork.exp foll-exec.exp fork-print-inferior-events.exp
  catch-fork-kill.exp catch-syscall.exp execl-update-breakpoints.exp
  # registers / memory
  store.exp restore.exp pc-fp.exp callfuncs.exp find.exp dump.exp auxv.exp
)

# Prints the runtest arguments (test files) of set $1, relative to the
# testsuite directory.
set_args() {
  local ts="$1" name="$2" f
  case "$name" in
    gdb.server|server) (cd "$ts" && ls gdb.server/*.exp) ;;
    base) for f in "${base_files[@]}"; do echo "gdb.base/$f"; done ;;
    threads|gdb.threads) (cd "$ts" && ls gdb.threads/*.exp) ;;
    gdb.*/*.exp) echo "$name" ;;
    gdb.*) [ -d "$ts/$name" ] || die "no test directory $name"; (cd "$ts" && ls "$name"/*.exp) ;;
    *) die "unknown set '$name' (gdb.server, base, threads, gdb.DIR, gdb.DIR/FILE.exp)" ;;
  esac
}
set_label() { case "$1" in server) echo gdb.server ;; gdb.threads) echo threads ;; *) echo "${1//\//_}" ;; esac; }

report() {
  local args=()
  for s in "${sets[@]}"; do args+=(--set "$(set_label "$s")"); done
  for s in "${stubs[@]}"; do args+=(--stub "$s"); done
  python3 "$root/scripts/conformance_report.py" --results "$dir/results" "${args[@]}" \
    --out "$dir/results/report"
}

if [ "$do_run" = 0 ]; then report; exit 0; fi

# ------------------------------------------------------------ prerequisites
need_pkgs=()
command -v runtest >/dev/null 2>&1 || need_pkgs+=(dejagnu)
ls /usr/src/gdb*.tar.* >/dev/null 2>&1 || need_pkgs+=(gdb-source)
[ -x "$gdb_bin" ] || need_pkgs+=(gdb)
{ [ -x "$gdbserver_bin" ] || [[ " ${stubs[*]} " != *" gdbserver "* ]]; } || need_pkgs+=(gdbserver)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "conformance: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${need_pkgs[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q "${need_pkgs[@]}" >/dev/null
  fi
fi
tarball="$(ls /usr/src/gdb*.tar.* | head -n1)"

if [[ " ${stubs[*]} " == *" dbgstub "* ]]; then
  if [ -z "${DBGSTUB:-}" ]; then
    DBGSTUB="${BUILD_DIR:-$root/build}/server/dbgstub"
    [ -x "$DBGSTUB" ] || (cd "$root" && ./scripts/build.sh >/dev/null)
  fi
  [ -x "$DBGSTUB" ] || die "no dbgstub binary at $DBGSTUB"
  DBGSTUB="$(realpath "$DBGSTUB")"
fi

# --------------------------------------------------------------- testsuite
mkdir -p "$dir"
src="$dir/src"
stamp="$src/.unpacked-from"
want_stamp="$tarball $(stat -c '%s %Y' "$tarball")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ]; then
  echo "conformance: unpacking the testsuite from $tarball"
  rm -rf "$src"; mkdir -p "$src"
  # All of it (a few seconds): tests reach outside testsuite/ now and then.
  tar -xf "$tarball" -C "$src" --strip-components=1
  echo "$want_stamp" > "$stamp"
fi
ts="$src/gdb/testsuite"
[ -x "$ts/configure" ] || die "no testsuite in $tarball"

# Our boards: native-extended-gdbserver with its own port range per stub, so
# that the two runs can go at once without fighting over ports.
mkdir -p "$dir/boards" "$dir/bin" "$dir/packets"
port=2345
for s in gdbserver dbgstub; do
  cat > "$dir/boards/conformance-$s.exp" <<EOF
# Generated by dbgstub's scripts/conformance.sh.
load_board_description "native-extended-gdbserver"
# The library would set portnum to 2345 when it is loaded later on; load it
# now (load_lib loads a file once) and then move this stub's ports.
load_lib gdbserver-support.exp
global portnum
set portnum $port
EOF
  port=$((port + 1000))
done

# The board starts GDBSERVER as "STUB --once --multi localhost:PORT" (or, in
# some gdb.server tests, "STUB --once :PORT PROG ARGS", "--attach", ...).
# dbgstub refuses vRun/vAttach unless told otherwise, so put the permissions
# in front of whatever the testsuite passes.
wrapper="$dir/bin/dbgstub-for-gdb-testsuite"
cat > "$wrapper" <<EOF
#!/usr/bin/env bash
# Generated by dbgstub's scripts/conformance.sh: the GDBSERVER of GDB's testsuite.
extra=(\${DBGSTUB_EXTRA_ARGS:-})
if [ "\${DBGSTUB_PACKET_LOG:-0}" = 1 ]; then
  log="$dir/packets/\$(date +%H%M%S).\$\$.log"
  echo "# \$0 \$*" > "\$log"
  # The log and packets go to the file; what the testsuite reads on the
  # terminal ("Listening on port", errors, the inferior's output) stays there.
  # (Not a pipe through tee: when dbgstub exited at once, on a bad address,
  # expect saw the end of the terminal before the error line came through.)
  exec "${DBGSTUB:-/nonexistent/dbgstub}" --allow-run --allow-attach --allow-file-write --log-packets --log-level debug \\
    --log-file="\$log" "\${extra[@]}" "\$@"
fi
exec "${DBGSTUB:-/nonexistent/dbgstub}" --allow-run --allow-attach --allow-file-write "\${extra[@]}" "\$@"
EOF
chmod +x "$wrapper"

stub_path() { case "$1" in dbgstub) echo "$wrapper" ;; gdbserver) echo "$gdbserver_bin" ;; esac; }

# One configured object directory per stub (tests compile into it).
configure_objdir() {
  local obj="$dir/obj/$1"
  if [ ! -f "$obj/site.exp" ] || [ "$obj/site.exp" -ot "$stamp" ]; then
    rm -rf "$obj"; mkdir -p "$obj"
    (cd "$obj" && "$ts/configure" >configure.log 2>&1 && make site.exp >/dev/null) \
      || die "configuring the testsuite failed, see $obj/configure.log"
    printf 'lappend boards_dir "%s"\n' "$dir/boards" >> "$obj/site.exp"
  fi
}

# Each test file is its own runtest run, so that one file that hangs against
# a stub costs at most --file-timeout and the rest of the set still runs.
run_stub() {
  local stub="$1" s label out files f fo rc start t left
  local obj="$dir/obj/$stub"
  for s in "${sets[@]}"; do
    label="$(set_label "$s")"
    out="$dir/results/$stub/$label"
    rm -rf "$out"; mkdir -p "$out/files"
    : > "$out/gdb.sum"; : > "$out/gdb.log"; : > "$out/timed-out"; : > "$out/not-run"
    mapfile -t files < <(set_args "$ts" "$s")
    start=$(date +%s)
    echo "conformance: $stub: $label (${#files[@]} files), results in $out"
    for f in "${files[@]}"; do
      left=$(( run_timeout - ($(date +%s) - start) ))
      if [ "$left" -le 5 ]; then echo "$f" >> "$out/not-run"; continue; fi
      t=$(( file_timeout < left ? file_timeout : left ))
      fo="$out/files/${f//\//_}"
      mkdir -p "$fo"
      rc=0
      # timeout signals its whole process group: runtest, gdb, the stub.
      (cd "$obj" && timeout -k 10 "$t" runtest --tool gdb \
          GDB="$gdb_bin" GDBSERVER="$(stub_path "$stub")" \
          --target_board="conformance-$stub" --outdir "$fo" \
          ${RUNTESTFLAGS:-} "$f" >"$fo/runtest.out" 2>&1) || rc=$?
      # Keep the per-file lines only (drop each run's header and summary).
      sed -n '/^Running .*\.exp \.\.\.$/,/=== gdb Summary ===/p' "$fo/gdb.sum" 2>/dev/null \
        | grep -v '=== gdb Summary ===' >> "$out/gdb.sum" || true
      cat "$fo/gdb.log" >> "$out/gdb.log" 2>/dev/null || true
      if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "$f $t" >> "$out/timed-out"
        echo "conformance: $stub: $f hit the ${t}s limit"
      fi
    done
    echo "0 $(( $(date +%s) - start ))" > "$out/status"
    echo "conformance: $stub: $label done in $(( $(date +%s) - start ))s"
  done
}

for st in "${stubs[@]}"; do configure_objdir "$st"; done
rm -rf "$dir/packets"/*
pids=()
# On Ctrl-C or kill, stop the runs (timeout's process groups) we started.
stop_runs() {
  trap - INT TERM
  for p in $(pgrep -P "$$" 2>/dev/null) "${pids[@]}"; do
    for t in $(pgrep -x timeout -P "$p" 2>/dev/null); do kill -TERM -- "-$t" 2>/dev/null || true; done
    for sub in $(pgrep -P "$p" 2>/dev/null); do
      for t in $(pgrep -x timeout -P "$sub" 2>/dev/null); do kill -TERM -- "-$t" 2>/dev/null || true; done
    done
  done
  exit 130
}
trap stop_runs INT TERM
for st in "${stubs[@]}"; do
  if [ "$parallel" = 1 ]; then run_stub "$st" & pids+=($!); else run_stub "$st"; fi
done
for p in "${pids[@]}"; do wait "$p"; done

report

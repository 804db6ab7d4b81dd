#!/usr/bin/env bash
# Installs, from Debian's packages, what dbgstub needs, and only what is
# missing (so it is quick on a prepared machine).
#
#   scripts/install-deps.sh [SET...]     default: every set
#     build    compile dbgstub and the demo program (scripts/build.sh)
#     demo     build, and gdb to connect to the demo (scripts/demo.sh)
#     test     everything the tests need: the suite's debuggers, QEMU,
#              clang for the fuzzers, GDB's testsuite (scripts/test.sh)
#     package  make and check the Debian package (scripts/package-check.sh)
set -euo pipefail
# dpkg-dev (dpkg-shlibdeps, for the package) comes with build-essential.
build=(build-essential cmake ninja-build pkg-config
       libasio-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libbpf-dev libvirt-dev)
demo=("${build[@]}" gdb)
# doctest and python3: the unit and integration tests; groff-base: the
# man page's check; the rest: what the integration tests drive.
test=("${build[@]}" doctest-dev python3 groff-base
      gdb gdbserver lldb
      clang-14 libclang-rt-14-dev
      qemu-system-x86 cpio
      gdb-source dejagnu
      libvirt-daemon-system libvirt-clients qemu-utils)
package=("${build[@]}" dpkg-dev man-db systemd)

sets=("$@")
((${#sets[@]})) || sets=(build demo test package)
packages=()
for s in "${sets[@]}"; do
  case "$s" in
    build) packages+=("${build[@]}") ;;
    demo) packages+=("${demo[@]}") ;;
    test) packages+=("${test[@]}") ;;
    package) packages+=("${package[@]}") ;;
    *) echo "install-deps: unknown set '$s' (build, demo, test, package)" >&2; exit 2 ;;
  esac
done
missing=()
for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

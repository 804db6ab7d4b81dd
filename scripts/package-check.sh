#!/usr/bin/env bash
# Builds the Debian package in a Release build folder, installs it with
# dpkg, checks what it installed (/usr/bin/dbgstub --version says the
# project's version, the man page, the unit passes `systemd-analyze verify`),
# removes it and checks that nothing it had installed is left. Run as root
# (dpkg -i). Exits non-zero on the first thing that is wrong.
#
#   scripts/package-check.sh            build/ is $PACKAGE_BUILD_DIR (default build-release/)
#
# A dbgstub package already installed (not by this script) is left alone:
# the check refuses to run rather than replace it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PACKAGE_BUILD_DIR:-$root/build-release}"
fail() { echo "package-check: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i)"
command -v dpkg-shlibdeps >/dev/null || fail "dpkg-shlibdeps missing (apt-get install dpkg-dev)"
if dpkg-query -W -f='${Status}' dbgstub 2>/dev/null | grep -q "ok installed"; then
  fail "a dbgstub package is installed already; remove it first (dpkg -r dbgstub)"
fi

version="$(sed -n 's/^project(dbgstub VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")"
[ -n "$version" ] || fail "no version in CMakeLists.txt's project()"

start=$SECONDS
# PACKAGE_CMAKE_ARGS: more cmake arguments (a compiler launcher, say).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDBGSTUB_TESTS=OFF ${PACKAGE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" --target dbgstub dbgstub_man
rm -f "$build"/dbgstub_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb="$build/dbgstub_${version}_amd64.deb"
[ -f "$deb" ] || fail "cpack made no $deb: $(ls "$build"/*.deb 2>/dev/null)"
echo "package-check: built $(basename "$deb") in $((SECONDS - start)) s"

depends="$(dpkg-deb -f "$deb" Depends)"
echo "package-check: Depends: $depends"
for lib in libspdlog libfmt libbpf libstdc++6 libc6; do
  [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib (shlibdeps): $depends"
done

installed=0
cleanup() { if ((installed)); then dpkg -r dbgstub >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
dpkg -i "$deb" >/dev/null
installed=1
mapfile -t files < <(dpkg -L dbgstub)

out="$(/usr/bin/dbgstub --version)"
[ "$out" = "dbgstub $version" ] || fail "/usr/bin/dbgstub --version printed '$out', not 'dbgstub $version'"
echo "package-check: /usr/bin/dbgstub --version: $out"
for f in /usr/share/man/man1/dbgstub.1.gz /usr/lib/systemd/system/dbgstub@.service \
         /usr/share/doc/dbgstub/README.md /usr/share/doc/dbgstub/examples/lab.json; do
  [ -f "$f" ] || fail "$f not installed"
done
man -l /usr/share/man/man1/dbgstub.1.gz >/dev/null 2>&1 || fail "man can't format the installed page"
if command -v systemd-analyze >/dev/null; then
  # A template is verified as an instance of it.
  unit_dir="$(mktemp -d)"
  cp /usr/lib/systemd/system/dbgstub@.service "$unit_dir/dbgstub@check.service"
  msg="$(cd "$unit_dir" && systemd-analyze verify "$unit_dir/dbgstub@check.service" 2>&1)" || true
  rm -rf "$unit_dir"
  [ -z "$msg" ] || fail "systemd-analyze verify: $msg"
  echo "package-check: systemd-analyze verify dbgstub@.service: no complaint"
fi

dpkg -r dbgstub >/dev/null
installed=0
left=()
for f in "${files[@]}"; do
  # Folders the package shares with others (/usr/bin, ...) stay.
  [ -d "$f" ] && continue
  [ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done
((${#left[@]} == 0)) || fail "left after dpkg -r: ${left[*]}"
status="$(dpkg-query -W -f='${db:Status-Status}' dbgstub 2>/dev/null || true)"
[ -z "$status" ] || [ "$status" = "not-installed" ] || fail "dpkg still lists dbgstub as '$status'"
for d in /usr/share/doc/dbgstub; do [ ! -e "$d" ] || fail "$d left after dpkg -r"; done
echo "package-check: dpkg -r removed all ${#files[@]} entries' files; OK ($((SECONDS - start)) s)"

#!/usr/bin/env bash
# Builds the test guest into OUTDIR: OUTDIR/vmlinuz (Debian's kernel, from
# the package linux-image-amd64 depends on, extracted, not installed) and
# OUTDIR/initrd (gzip'd newc cpio: busybox-static, qemu-ga with its shared
# libraries, a static getpid loop and tests/vm/init).
#
# Idempotent and cached: OUTDIR/stamp records the inputs (the Debian package
# versions, this folder's sources and the compiler); when they are unchanged
# the script only checks and exits. Downloads use `apt-get download` (the
# .debs are kept in OUTDIR/debs); nothing is installed on the host. Needs
# gcc (with the static libc), cpio and gzip: scripts/install-deps.sh.
#
# Usage: tests/vm/build-guest.sh OUTDIR        (FORCE=1 rebuilds anyway)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

# One build at a time per OUTDIR (tests may start in parallel).
exec 9>"$out/.lock"
flock 9

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_update() {
  if [ $apt_updated -eq 0 ]; then
    echo "build-guest: apt-get update" >&2
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

kernel_package() {  # linux-image-amd64 is a metapackage: the real, versioned one
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# "package=version" for the packages named, the versions apt would download
# (one apt-cache call: each one costs ~0.6 s where apt keeps no binary cache).
show() {
  apt-cache show --no-all-versions "$@" 2>/dev/null |
    awk '/^Package:/ { p = $2 } /^Version:/ { print p "=" $2 }'
}

# The guest's packages: the kernel image, busybox-static, and the closure of
# qemu-guest-agent's Depends over library packages (qemu-ga's shared
# libraries come from those), one apt-cache call per level.
resolve() {
  local kpkg level deps p
  kpkg="$(kernel_package)"
  [ -n "$kpkg" ] || return 1
  mapfile -t versions < <(show "$kpkg" busybox-static)
  [ ${#versions[@]} -eq 2 ] || return 1
  local seen=" " libs=()
  level=(qemu-guest-agent)
  while ((${#level[@]})); do
    for p in "${level[@]}"; do seen+="$p "; done
    libs+=("${level[@]}")
    deps="$(apt-cache show --no-all-versions "${level[@]}" 2>/dev/null |
      sed -n 's/^\(Pre-\)\?Depends: //p' | tr ',' '\n' |
      sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g' | LC_ALL=C sort -u)"
    level=()
    for p in $deps; do
      case "$p" in lib*|zlib1g) ;; *) continue ;; esac
      case "$seen" in *" $p "*) ;; *) level+=("$p") ;; esac
    done
  done
  local found sorted
  mapfile -t sorted < <(printf '%s\n' "${libs[@]}" | LC_ALL=C sort -u)
  mapfile -t found < <(show "${sorted[@]}")
  [ ${#found[@]} -eq ${#libs[@]} ] || return 1
  versions+=("${found[@]}")
}

sources_hash="$(cd "$here" && cat build-guest.sh init getpid-loop.c | sha256sum | cut -c1-16)"
# Quick path: the same sources, compiler and apt package lists as the last
# build mean the same inputs, without asking apt at all.
fingerprint="$( { echo "$sources_hash"; gcc -dumpfullversion 2>/dev/null || true
  stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* 2>/dev/null || true; } | sha256sum | cut -c1-32)"
if [ "${FORCE:-0}" != 1 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd" ] && [ -s "$out/stamp" ] &&
   [ "$(cat "$out/fingerprint" 2>/dev/null)" = "$fingerprint" ]; then
  echo "build-guest: $out is up to date ($(cat "$out/kernel-release" 2>/dev/null))"
  exit 0
fi

if ! resolve; then
  apt_update
  resolve || { echo "build-guest: apt cannot find the guest's packages (linux-image-amd64, busybox-static, qemu-guest-agent)" >&2; exit 1; }
fi

key="$(printf '%s\n' "${versions[@]}" "sources=$sources_hash" "$(gcc -dumpfullversion 2>/dev/null)" | sha256sum | cut -c1-32)"
if [ "${FORCE:-0}" != 1 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd" ] &&
   [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
  echo "$fingerprint" >"$out/fingerprint"
  echo "build-guest: $out is up to date (${versions[0]})"
  exit 0
fi

echo "build-guest: building into $out"
printf '  %s\n' "${versions[@]}"
for tool in gcc cpio gzip dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "build-guest: $tool is missing (run scripts/install-deps.sh)" >&2; exit 1; }
done

# --- Download (cached in OUTDIR/debs; other versions are pruned) ---
debs="$out/debs"
mkdir -p "$debs"
deb_of() {  # the .deb file name apt-get download writes for package=version
  local p="${1%%=*}" v="${1#*=}"
  v="${v//:/%3a}"
  echo "$debs/${p}_${v}_amd64.deb"
}
wanted=()
fetch=()
for pv in "${versions[@]}"; do
  f="$(deb_of "$pv")"
  wanted+=("$f")
  [ -s "$f" ] || fetch+=("$pv")
done
for f in "$debs"/*.deb; do
  [ -e "$f" ] || continue
  case " ${wanted[*]} " in *" $f "*) ;; *) rm -f "$f" ;; esac
done
if ((${#fetch[@]})); then
  # -o APT::Sandbox::User=root: the _apt user may not be able to write OUTDIR.
  if ! (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${fetch[@]}" >/dev/null); then
    # A stale package list names versions the mirror no longer has: update
    # the lists and start again, once.
    [ "${BUILD_GUEST_RETRY:-0}" = 0 ] || { echo "build-guest: apt-get download failed" >&2; exit 1; }
    apt_update
    BUILD_GUEST_RETRY=1 exec "$0" "$out"
  fi
fi
for f in "${wanted[@]}"; do
  [ -s "$f" ] || { echo "build-guest: apt-get download did not produce $f" >&2; exit 1; }
done

work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- Kernel: only ./boot from the image package (not its ~400 MB of modules) ---
kdeb="${wanted[0]}"
mkdir -p "$work/kernel"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work/kernel" --wildcards './boot/*'
vmlinuz="$(ls "$work"/kernel/boot/vmlinuz-*)"
release="${vmlinuz##*/vmlinuz-}"

# --- Userland: qemu-ga and the library packages, in a scratch sysroot ---
sysroot="$work/sysroot"
mkdir -p "$sysroot"
for f in "${wanted[@]:1}"; do
  dpkg-deb -x "$f" "$sysroot"
done
ldso="$sysroot/lib64/ld-linux-x86-64.so.2"
[ -e "$ldso" ] || ldso="$sysroot/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
libpath="$sysroot/lib/x86_64-linux-gnu:$sysroot/usr/lib/x86_64-linux-gnu"
# The loader from the sysroot lists the libraries qemu-ga needs, found in
# the sysroot only (so the host's installed libraries do not matter).
needed="$("$ldso" --inhibit-cache --library-path "$libpath" --list "$sysroot/usr/sbin/qemu-ga")"
if grep -q "not found" <<<"$needed"; then
  echo "build-guest: qemu-ga needs libraries that its packages' Depends do not bring:" >&2
  echo "$needed" >&2
  exit 1
fi

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,proc,sys,dev,tmp,run,var/run,var/log,etc,root}
cp "$sysroot/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cp "$sysroot/usr/sbin/qemu-ga" "$root/usr/sbin/qemu-ga"
awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' <<<"$needed" | while read -r lib; do
  cp -L "$lib" "$root/lib/x86_64-linux-gnu/$(basename "$lib")"
done
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
gcc -static -O2 -o "$root/bin/getpid-loop" "$here/getpid-loop.c"
install -m 0755 "$here/init" "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "dbgstub-guest" >"$root/etc/hostname"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n >"$work/initrd"

# --- Install atomically-ish: the files first, the stamp last ---
cp "$vmlinuz" "$out/vmlinuz.new" && mv -f "$out/vmlinuz.new" "$out/vmlinuz"
mv -f "$work/initrd" "$out/initrd"
cp "$work"/kernel/boot/config-* "$out/config"
echo "$release" >"$out/kernel-release"
printf '%s\n' "${versions[@]}" >"$out/packages"
echo "$key" >"$out/stamp"
echo "$fingerprint" >"$out/fingerprint"
echo "build-guest: done: $out/vmlinuz ($release), $out/initrd ($(du -h "$out/initrd" | cut -f1))"

#!/usr/bin/env bash
# Installs what dbgstub needs to build and test, from Debian's packages,
# and only what is missing (so it is quick on a prepared machine).
set -euo pipefail
packages=(
  build-essential cmake ninja-build python3
  libasio-dev libspdlog-dev nlohmann-json3-dev doctest-dev libcli11-dev
  libbpf-dev pkg-config
  gdb gdbserver lldb
  clang-14 libclang-rt-14-dev
  qemu-system-x86 cpio
  gdb-source dejagnu
  libvirt-dev libvirt-daemon-system libvirt-clients qemu-utils
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

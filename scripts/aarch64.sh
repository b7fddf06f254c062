# shellcheck shell=bash
# Sourced by the scripts that build for or run on Linux aarch64 from this x86_64 machine.
#
#   aarch64_toolchain   rustup's aarch64-unknown-linux-gnu target, Debian's aarch64 GCC as
#                       linker (and C/C++ compiler of the dependencies that build C), and
#                       qemu-user-static with libc6-arm64-cross's C runtime as sysroot; exports
#                       cargo's linker and runner settings and AARCH64_RUNNER (the emulator
#                       command that runs an aarch64 Linux program here).
#   aarch64_python      an aarch64 CPython 3.11 (Debian's arm64 packages, unpacked into
#                       ~/.cache/latebird/aarch64-python, not installed) run under the emulator;
#                       exports AARCH64_PYTHON, a command that starts it like `python3`.
#
# Each installs what it lacks with apt-get (scripts/apt.sh) and is quick when all is
# there.

# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

AARCH64_TARGET=aarch64-unknown-linux-gnu
AARCH64_SYSROOT=/usr/aarch64-linux-gnu

_apt() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}

aarch64_toolchain() {
  rustup_target "$AARCH64_TARGET"
  apt_install qemu-user-static libc6-arm64-cross gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
  # The CPU qemu emulates: every Armv8 extension it knows (dotprod included, as on Graviton
  # 2 and later); QEMU_CPU=cortex-a72 (Graviton 1) emulates one without.
  export QEMU_CPU="${QEMU_CPU:-max}"
  AARCH64_RUNNER="qemu-aarch64-static -L $AARCH64_SYSROOT"
  export AARCH64_RUNNER
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$AARCH64_RUNNER"
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
}

# Debian's arm64 CPython and the libraries it loads (its package dependencies, plus the C++
# runtime that numpy's wheel needs).
AARCH64_PYTHON_PACKAGES=(libc6 libgcc-s1 libstdc++6 python3.11-minimal libpython3.11-minimal
  libpython3.11-stdlib libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1 libcrypt1
  libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libtirpc3 libnsl2 libdb5.3 libgssapi-krb5-2
  libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1)

aarch64_python() {
  aarch64_toolchain
  local home="${HOME}/.cache/latebird/aarch64-python"
  local want
  want="$(printf '%s\n' "${AARCH64_PYTHON_PACKAGES[@]}" | sha256sum | cut -c1-16)"
  if [ "$(cat "$home/.stamp" 2>/dev/null)" != "$want" ]; then
    echo "[aarch64] unpacking Debian's arm64 CPython into $home" >&2
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      local sudo=""
      [ "$(id -u)" -ne 0 ] && sudo="sudo"
      $sudo dpkg --add-architecture arm64
      _apt update -q >/dev/null
    fi
    local debs
    debs="$(mktemp -d)"
    chmod 777 "$debs" # apt-get download runs as the _apt user where it can
    (cd "$debs" && apt-get download -q "${AARCH64_PYTHON_PACKAGES[@]/%/:arm64}" >/dev/null 2>&1) || {
      _apt update -q >/dev/null
      (cd "$debs" && apt-get download -q "${AARCH64_PYTHON_PACKAGES[@]/%/:arm64}" >/dev/null)
    }
    rm -rf "$home"
    mkdir -p "$home/root"
    local deb
    for deb in "$debs"/*.deb; do
      dpkg-deb -x "$deb" "$home/root"
    done
    rm -rf "$debs"
    cat >"$home/python3" <<EOF
#!/bin/sh
# Debian's arm64 CPython under user-mode emulation (scripts/aarch64.sh).
export QEMU_CPU="\${QEMU_CPU:-max}"
exec qemu-aarch64-static -L "$home/root" "$home/root/usr/bin/python3.11" "\$@"
EOF
    chmod 755 "$home/python3"
    echo "$want" >"$home/.stamp"
  fi
  export AARCH64_PYTHON="$home/python3"
}

#!/usr/bin/env bash
# The engine's Rust tests on Linux aarch64 (Graviton), under user-mode emulation on an x86_64
# machine: cross-compiled with Debian's aarch64 GCC as linker (and C/C++ compiler for the
# dependencies that build C), run by qemu-user-static with the aarch64 C runtime of
# libc6-arm64-cross as its sysroot. Slow but real: the kernels' portable paths, the
# tokenizer and the parity with PyLate's references on an aarch64 CPU model.
#
#   bash scripts/emulated_aarch64.sh [cargo test arguments...]
#
# By default: the unit tests and the parity, batching, precision and scoring tests. On the
# 2-core x86_64 machine they took 18 minutes (about 3 of compiling, then the tests: qemu
# emulates floating point in software, so batching alone takes 9.5 minutes). Not part of
# scripts/test.sh for that reason.
#
# Installs what it needs on a fresh Debian machine (rustup target, apt packages).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

say() { printf '[emulated_aarch64] %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx "$TARGET"; then
  say "adding rustup's $TARGET target"
  rustup target add "$TARGET"
fi
missing=()
for pkg in qemu-user-static libc6-arm64-cross gcc-aarch64-linux-gnu g++-aarch64-linux-gnu; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
python scripts/build_test_models.py >/dev/null

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
# Optimised code for the engine as for its dependencies (the dev profile's opt-level 0 is
# too slow to emulate): the kernels run as they would on an aarch64 machine.
export CARGO_PROFILE_DEV_OPT_LEVEL=3
export CARGO_PROFILE_DEV_DEBUG=0
start=$(date +%s)
if [ $# -eq 0 ]; then
  set -- --lib --test parity --test batching --test scoring --test precision
fi
cargo test -p latebird --locked --target "$TARGET" "$@"
say "aarch64 tests passed under emulation in $(($(date +%s) - start)) s"

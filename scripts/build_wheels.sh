#!/usr/bin/env bash
# Builds latebird's wheels for every platform from this Linux x86_64 machine, into target/wheels/:
#
#   Linux x86_64 and aarch64   manylinux_2_28 (glibc 2.28+: Amazon Linux 2023, Debian 10+, ...)
#   macOS arm64 and x86_64     macosx_11_0_arm64, macosx_10_12_x86_64
#   Windows x86_64             win_amd64 (the GNU target: no MSVC runtime needed)
#
# All are abi3 (one wheel per platform for Python 3.9 and later). The Linux and macOS ones are
# cross-linked by zig (the ziglang package on PyPI) through `maturin build --zig`: for Linux
# against glibc 2.28's symbols, for macOS against zig's copy of the system library's interface
# (no Apple SDK). The Windows one is linked by Debian's MinGW-w64 (maturin's zig route exports
# a wrong module init symbol for a package's submodule), with libgcc and the thread library
# linked statically; pyo3 writes python3.dll's import library itself. Then every wheel is
# inspected: auditwheel for Linux, scripts/inspect_wheels.py for all (tag, architecture,
# minimum macOS, linked libraries).
#
#   bash scripts/build_wheels.sh [TARGET...]      (default: all five; e.g. aarch64-unknown-linux-gnu)
#
# On a macOS or Windows machine (the release workflow's runners) it builds that machine's own
# targets with its own toolchain (x86_64-pc-windows-msvc on Windows); LATEBIRD_SYSTEM_PYTHON=1
# uses the Python on PATH (with maturin) instead of the project's virtualenv.
#
# The CPU build only: the Accelerate and Metal wheels need Apple's SDK to link (their code is
# compiled by scripts/check_backends.sh), the CUDA and MKL ones a Linux machine of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LATEBIRD_SYSTEM_PYTHON:-}" ]; then
  source scripts/env.sh
fi
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

all=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu aarch64-apple-darwin x86_64-apple-darwin
  x86_64-pc-windows-gnu)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} x86_64-pc-windows-msvc " == *" $t "* ]] ||
    { echo "build_wheels.sh: unknown target $t; expected one of: ${all[*]}" >&2; exit 2; }
done

linux_host=""
[ "$(uname -s)" = Linux ] && linux_host=1
if [ -n "$linux_host" ]; then
  python -m pip show ziglang >/dev/null 2>&1 || python -m pip install --quiet "ziglang==0.17.1"
  python -m pip show auditwheel >/dev/null 2>&1 || python -m pip install --quiet "auditwheel>=6,<7"
  if [[ " ${targets[*]} " == *" x86_64-pc-windows-gnu "* ]] &&
    ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
    apt_install gcc-mingw-w64-x86-64
  fi
fi
rustup_target "${targets[@]}"

out=target/wheels
mkdir -p "$out"
built=()
for t in "${targets[@]}"; do
  start=$SECONDS
  args=(--release --locked --quiet --target "$t" --out "$out")
  case "$t" in
    *-linux-gnu) args+=(--compatibility manylinux_2_28) ;;
  esac
  if [ -n "$linux_host" ]; then
    case "$t" in
      *-linux-gnu | *-apple-darwin) args+=(--zig) ;;
      x86_64-pc-windows-gnu)
        export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
        export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
        ;;
    esac
  fi
  # The oldest macOS each architecture's Rust standard library supports.
  case "$t" in
    aarch64-apple-darwin) export MACOSX_DEPLOYMENT_TARGET=11.0 ;;
    x86_64-apple-darwin) export MACOSX_DEPLOYMENT_TARGET=10.12 ;;
    *) unset MACOSX_DEPLOYMENT_TARGET ;;
  esac
  # The wheel of an earlier run for this platform goes: what is listed is what was built.
  case "$t" in
    x86_64-unknown-linux-gnu) pattern='manylinux_*_x86_64' ;;
    aarch64-unknown-linux-gnu) pattern='manylinux_*_aarch64' ;;
    aarch64-apple-darwin) pattern='macosx_*_arm64' ;;
    x86_64-apple-darwin) pattern='macosx_*_x86_64' ;;
    x86_64-pc-windows-*) pattern='win_amd64' ;;
  esac
  # shellcheck disable=SC2086
  rm -f "$out"/latebird-*-$pattern.whl
  # zig's linker and C compiler, not those a caller set for this target (scripts/aarch64.sh
  # sets Debian's aarch64 GCC, whose glibc is newer than manylinux_2_28's).
  key="$(tr 'a-z-' 'A-Z_' <<<"$t")"
  unset_own=()
  if [[ " ${args[*]} " == *" --zig "* ]]; then
    unset_own=(-u "CARGO_TARGET_${key}_LINKER" -u "CC_${t//-/_}" -u "CXX_${t//-/_}")
  fi
  env "${unset_own[@]}" maturin build "${args[@]}"
  # shellcheck disable=SC2086
  wheel="$(ls "$out"/latebird-*-$pattern.whl)"
  if [ -n "$linux_host" ] && [[ "$t" == *-linux-gnu ]]; then
    auditwheel show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'
    echo
  fi
  built+=("$wheel")
  printf '[build_wheels] %s: %s (%d KiB) in %d s\n' "$t" "$(basename "$wheel")" \
    "$(($(wc -c <"$wheel") / 1024))" "$((SECONDS - start))"
done
python scripts/inspect_wheels.py "${built[@]}"

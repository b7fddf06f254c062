#!/usr/bin/env bash
# The engine on Windows x86_64, run under Wine on this Linux machine: the unit tests and the
# parity (PyLate's references), batching and scoring tests, cross-compiled for
# x86_64-pc-windows-gnu with Debian's MinGW-w64 as linker and C/C++ compiler and run by
# Debian's wine64. The same Rust code as the Windows wheel's extension (the file paths, the
# memory-mapped safetensors and the thread pool on Windows' APIs as Wine provides them).
#
# The wheel itself is inspected, not run (scripts/inspect_wheels.py): no Windows CPython can
# be fetched from this machine (python.org, NuGet and GitHub are out of reach; PyPI and npm
# carry none).
#
#   bash scripts/wine_windows.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
TARGET=x86_64-pc-windows-gnu

rustup_target "$TARGET"
apt_install wine64 gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64
python scripts/build_test_models.py >/dev/null

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export CXX_x86_64_pc_windows_gnu=x86_64-w64-mingw32-g++
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64
export WINEPREFIX="$HOME/.cache/latebird/wine" WINEDEBUG=-all
# Rust's standard library draws random numbers with ProcessPrng from bcryptprimitives.dll,
# which every Windows 10 and later has and Debian's Wine 8 lacks: the tests get a stand-in
# built here that fills the buffer from RtlGenRandom (advapi32's SystemFunction036).
shim="$WINEPREFIX/latebird-shim"
if [ ! -f "$shim/bcryptprimitives.dll" ]; then
  mkdir -p "$shim"
  cat >"$shim/bcryptprimitives.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
C
  x86_64-w64-mingw32-gcc -O2 -shared -o "$shim/bcryptprimitives.dll" "$shim/bcryptprimitives.c" -ladvapi32
fi
# The stand-in, and MinGW's C++ runtime DLL for the test programs (the wheel links it
# statically).
WINEPATH="$shim;$(dirname "$(x86_64-w64-mingw32-g++ -print-file-name=libstdc++-6.dll)")"
export WINEPATH
start=$SECONDS
if [ $# -eq 0 ]; then
  set -- --lib --test parity --test batching --test scoring
fi
cargo test -p latebird --locked --target "$TARGET" "$@"
echo "[wine_windows] Windows tests passed under Wine in $((SECONDS - start)) s" >&2

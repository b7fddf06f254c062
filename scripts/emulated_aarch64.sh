#!/usr/bin/env bash
# latebird on Linux aarch64 (Graviton), under user-mode emulation on this x86_64 machine:
# qemu-user-static runs aarch64 programs, with the aarch64 C runtime of libc6-arm64-cross (and
# for Python, Debian's arm64 CPython unpacked beside it) as sysroot. Slow but real: the
# kernels (NEON, and the sdot int8 kernel), the tokenizer and the parity with PyLate's
# references on an aarch64 CPU model. See scripts/aarch64.sh for the toolchain.
#
#   bash scripts/emulated_aarch64.sh [rust] [python] [lambda] [ci]   (default: the first three)
#
#   rust     the engine's unit tests and its parity, batching, precision and scoring tests,
#            cross-compiled with Debian's aarch64 GCC as linker; the unit tests again on a CPU
#            without the dot-product instructions (QEMU_CPU=cortex-a72: Graviton 1), where the
#            portable int8 kernel runs.
#   python   the aarch64 wheel of scripts/build_wheels.sh, installed with numpy's aarch64 wheel
#            for the aarch64 CPython, passing the Python parity, precision and scoring tests.
#   lambda   the arm64 Lambda packages (scripts/build_lambda.sh and build_lambda_python.sh with
#            --arch arm64) through tests/lambda: the Rust bootstrap, the Python handler under
#            the stand-in loop and under awslambdaric's aarch64 wheel.
#   ci       a bounded form of the three for scripts/test.sh: the kernels' unit tests on both
#            CPUs, the wheel's parity tests, and the Rust function's Lambda tests.
#
# On the 2-core x86_64 machine, with the builds cached: rust 15 minutes (qemu does floating
# point in software: batching alone takes 9.5), python 5 (95 tests), lambda 6 (163 tests),
# ci 5. Outside scripts/test.sh but for the ci part, for that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# shellcheck source=scripts/aarch64.sh
source scripts/aarch64.sh

say() { printf '\n[emulated_aarch64] %s\n' "$*" >&2; }

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(rust python lambda)
for p in "${parts[@]}"; do
  case "$p" in
    rust | python | lambda | ci) ;;
    *) echo "emulated_aarch64.sh: unknown part $p; expected rust, python, lambda or ci" >&2; exit 2 ;;
  esac
done
wants() { [[ " ${parts[*]} " == *" $1 "* ]]; }
python scripts/build_test_models.py >/dev/null
aarch64_toolchain
summary=()
timed() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  summary+=("$(printf '%-8s %5d s' "$name" "$((SECONDS - start))")")
}

# rust_tests [--quick]: --quick runs the kernels' unit tests only.
rust_tests() {
  # Optimised code for the engine as for its dependencies (the dev profile's opt-level 0 is
  # too slow to emulate): the kernels run as they would on an aarch64 machine.
  export CARGO_PROFILE_DEV_OPT_LEVEL=3 CARGO_PROFILE_DEV_DEBUG=0
  local tests=(--lib --test parity --test batching --test scoring --test precision) unit=(--lib)
  if [ "${1:-}" = --quick ]; then
    tests=(--lib kernels)
    unit=(--lib kernels)
  fi
  say "Rust tests on an aarch64 CPU with every extension qemu knows (QEMU_CPU=$QEMU_CPU)"
  cargo test -p latebird --locked --target "$AARCH64_TARGET" "${tests[@]}"
  say "Rust unit tests on a CPU without dot products (QEMU_CPU=cortex-a72)"
  QEMU_CPU=cortex-a72 cargo test -p latebird --locked --target "$AARCH64_TARGET" "${unit[@]}"
}

# python_tests [TEST FILE...]: by default the parity, precision and scoring tests.
python_tests() {
  local files=("$@")
  [ ${#files[@]} -eq 0 ] &&
    files=(tests/python/test_parity.py tests/python/test_precision.py tests/python/test_scoring.py)
  aarch64_python
  bash scripts/build_wheels.sh "$AARCH64_TARGET"
  local site="$HOME/.cache/latebird/aarch64-python/site"
  rm -rf "$site"
  python -m pip install --quiet --no-compile --target "$site" \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    --implementation cp --python-version 3.11 --only-binary=:all: \
    target/wheels/latebird-*-manylinux_2_28_aarch64.whl -r scripts/requirements-wheel-tests.txt
  say "Python tests with the aarch64 wheel in an aarch64 CPython"
  PYTHONPATH="$site" PYTHONNOUSERSITE=1 "$AARCH64_PYTHON" -c \
    'import platform, latebird; print(platform.machine(), latebird.__file__)'
  PYTHONPATH="$site" PYTHONNOUSERSITE=1 "$AARCH64_PYTHON" -m pytest -q -p no:cacheprovider \
    "${files[@]}"
}

# lambda_tests [--rust-only]: --rust-only builds and tests the Rust function alone.
lambda_tests() {
  local files=(tests/lambda/test_lambda.py tests/lambda/test_same_answers.py
    tests/lambda/test_settings.py) select=()
  aarch64_python
  bash scripts/build_lambda.sh --arch arm64
  if [ "${1:-}" = --rust-only ]; then
    files=(tests/lambda/test_lambda.py)
    select=(-k rust)
  else
    bash scripts/build_lambda_python.sh --arch arm64 --python-version 3.11
  fi
  local ric="$HOME/.cache/latebird/aarch64-python/awslambdaric"
  rm -rf "$ric"
  python -m pip install --quiet --no-compile --target "$ric" \
    --platform manylinux2014_aarch64 --implementation cp --python-version 3.11 \
    --only-binary=:all: "$(grep -E '^awslambdaric==' scripts/requirements-dev.txt)"
  say "Lambda tests on the arm64 packages"
  # Not test_load.py: its hundred-odd requests per function take most of an hour emulated,
  # and what it checks (concurrency, memory over time) is the same code on either
  # architecture.
  LATEBIRD_LAMBDA_ARCH=arm64 LATEBIRD_LAMBDA_RUNNER="$AARCH64_RUNNER" \
    LATEBIRD_LAMBDA_PYTHON="$AARCH64_PYTHON" LATEBIRD_LAMBDA_PYTHONPATH="$ric" \
    python -m pytest -q -p no:cacheprovider "${select[@]}" "${files[@]}"
}

wants rust && timed rust rust_tests
wants python && timed python python_tests
wants lambda && timed lambda lambda_tests
if wants ci; then
  timed rust rust_tests --quick
  timed python python_tests tests/python/test_parity.py
  timed lambda lambda_tests --rust-only
fi
say "passed under emulation:"
printf '  %s\n' "${summary[@]}" >&2

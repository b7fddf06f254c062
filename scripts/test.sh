#!/usr/bin/env bash
# Runs every check and test of the project; sets up everything it needs on a fresh machine.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "test models"
python scripts/build_test_models.py

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
ruff check .
ruff format --check .

step "Rust tests"
cargo test -p latebird -p latebird-hub -p latebird-service --locked
# The same parity, batching and scoring checks on the portable kernels (no AVX) and on the
# Candle-ops path that other devices take.
LATEBIRD_CPU=baseline cargo test -p latebird --locked --test parity --test batching --test scoring
LATEBIRD_CPU=generic cargo test -p latebird --locked --test parity --test batching --test precision

step "Fuzzing (bounded: 60 s per target; bash scripts/fuzz.sh --seconds 600 for a longer run)"
bash scripts/fuzz.sh --seconds "${LATEBIRD_FUZZ_SECONDS:-60}"

step "Python package"
maturin develop --release --locked --quiet

step "Type stubs match the extension"
python -m mypy.stubtest latebird._latebird

step "Java for the PySpark tests"
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless

step "Python tests (with the streaming CLI, a two-node Ray cluster and Spark local[2])"
python -m pytest -q tests/python

step "PLAID index round trip against PyLate (runs where a PyLate Python is found; see the script)"
if [ "${LATEBIRD_INDEX_CHECK:-}" = install ]; then
  bash scripts/index_check.sh --install
else
  bash scripts/index_check.sh
fi

step "Quantized copies of the test model for the browser demo (latebird quantize)"
for precision in float16 int8; do
  copy="target/web-models/minilm-colbert-$precision"
  [ -f "$copy/model.safetensors" ] ||
    { rm -rf "$copy" && latebird quantize tests/models/minilm-colbert "$copy" --precision "$precision"; }
done

step "WebAssembly package (four builds)"
bash scripts/build_wasm.sh

step "JS and browser tests"
[ -x "${LATEBIRD_CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium fonts-liberation
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
# Node runs the single-threaded SIMD build; builds.test.mjs runs all four in Chromium, and
# package.test.mjs packs, installs, type-checks and bundles the npm package.
node --test tests/js/*.test.mjs
# The relaxed-SIMD build in Node too (Node 20's V8 runs it behind a flag, newer ones without).
relaxed_flag=()
if node --experimental-wasm-relaxed-simd -e 0 2>/dev/null; then
  relaxed_flag=(--experimental-wasm-relaxed-simd)
fi
LATEBIRD_WASM_BUILD=relaxed node "${relaxed_flag[@]}" --test tests/js/parity.test.mjs \
  tests/js/precision.test.mjs tests/js/scoring.test.mjs

step "Wheels for every platform: Linux x86_64 and aarch64, macOS arm64 and x86_64, Windows (built and inspected)"
bash scripts/build_wheels.sh

step "Rust Lambda package"
bash scripts/build_lambda.sh

step "Python Lambda package (for this Python, to run it in the tests)"
bash scripts/build_lambda_python.sh \
  --python-version "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

step "Lambda tests (local Runtime API emulator)"
python -m pytest -q tests/lambda

step "Windows under Wine (bounded: unit and parity tests; bash scripts/wine_windows.sh for all)"
bash scripts/wine_windows.sh --lib --test parity

step "Linux aarch64 under emulation (bounded: kernels, the wheel's parity, the Rust Lambda; bash scripts/emulated_aarch64.sh for all)"
bash scripts/emulated_aarch64.sh ci

step "Backends: MKL built and tested, CUDA and Apple (Metal, Accelerate) compiled"
bash scripts/check_backends.sh

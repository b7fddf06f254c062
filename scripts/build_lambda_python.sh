#!/usr/bin/env bash
# Builds the Python Lambda deployment zip for x86_64 or arm64 (Graviton): latebird's
# manylinux_2_28 wheel for that architecture (abi3, from scripts/build_wheels.sh) plus numpy
# for the runtime's Python, unpacked at the zip's root; handler
# `latebird.lambda_handler.handler`; the model under `model/` with --model (else set
# LATEBIRD_MODEL, e.g. a layer's /opt/model).
#   bash scripts/build_lambda_python.sh [--arch x86_64|arm64] [--python-version 3.12]
#                                       [--model DIR] [--out FILE.zip]
# Default output: target/lambda/latebird-lambda-python.zip (x86_64),
# latebird-lambda-python-arm64.zip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

arch=x86_64
pyver="3.12"
model=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --python-version) pyver="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--arch x86_64|arm64] [--python-version X.Y] [--model DIR] [--out FILE.zip]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64) target=x86_64-unknown-linux-gnu; machine=x86_64; suffix="" ;;
  arm64) target=aarch64-unknown-linux-gnu; machine=aarch64; suffix="-arm64" ;;
  *) echo "--arch $arch: expected x86_64 or arm64" >&2; exit 2 ;;
esac
out="${out:-target/lambda/latebird-lambda-python$suffix.zip}"
if [ -n "$model" ] && [ ! -f "$model/modules.json" ]; then
  echo "--model $model: not a PyLate model folder (no modules.json)" >&2
  exit 2
fi

# Linked through zig against glibc 2.28's symbols: the wheel installs on Amazon Linux 2023
# (glibc 2.34) and older distributions alike (build_wheels.sh checks it with auditwheel).
bash scripts/build_wheels.sh "$target"
wheel="$(ls target/wheels/latebird-*-manylinux_2_28_$machine.whl)"

stage="target/lambda/stage-python$suffix"
rm -rf "$stage"
python -m pip install --quiet --no-compile --target "$stage" \
  --platform "manylinux_2_28_$machine" --platform "manylinux2014_$machine" \
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

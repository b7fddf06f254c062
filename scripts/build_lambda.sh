#!/usr/bin/env bash
# Builds the Rust Lambda function (crates/lambda) as a deployment zip for the custom runtime
# provided.al2023, on x86_64 or arm64 (Graviton): a stripped `bootstrap` at the zip's root,
# and the model folder under `model/` when --model is given (else give the function
# LATEBIRD_MODEL, e.g. a layer's /opt/model).
#   bash scripts/build_lambda.sh [--arch x86_64|arm64] [--model DIR] [--out FILE.zip]
# Default output: target/lambda/latebird-lambda.zip (x86_64), latebird-lambda-arm64.zip.
# x86_64 is built for the host's x86_64-unknown-linux-gnu (sharing the release build cache
# with the Python extension); arm64 is cross-compiled for aarch64-unknown-linux-gnu with
# Debian's aarch64 GCC as linker (scripts/aarch64.sh installs it). The binary must need
# nothing newer than glibc 2.34, Amazon Linux 2023's: the script checks its dynamic
# libraries and glibc symbol versions.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

arch=x86_64
model=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--arch x86_64|arm64] [--model DIR] [--out FILE.zip]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64) target=x86_64-unknown-linux-gnu; loader=ld-linux-x86-64; suffix="" ;;
  arm64) target=aarch64-unknown-linux-gnu; loader=ld-linux-aarch64; suffix="-arm64" ;;
  *) echo "--arch $arch: expected x86_64 or arm64" >&2; exit 2 ;;
esac
out="${out:-target/lambda/latebird-lambda$suffix.zip}"
if [ "$(uname -m)" != "x86_64" ] || [ "$(uname -s)" != "Linux" ]; then
  echo "build_lambda.sh builds on x86_64 Linux only" >&2
  exit 1
fi
if [ -n "$model" ] && [ ! -f "$model/modules.json" ]; then
  echo "--model $model: not a PyLate model folder (no modules.json)" >&2
  exit 2
fi

stage="target/lambda/stage$suffix"
rm -rf "$stage"
mkdir -p "$stage"
if [ "$arch" = arm64 ]; then
  # shellcheck source=scripts/aarch64.sh
  source scripts/aarch64.sh
  aarch64_toolchain
  # A build directory of its own: the aarch64 wheel's build (zig's C compiler) and this one
  # (Debian's GCC) would otherwise rebuild each other's C dependencies every time.
  export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-lambda-arm64"
  cargo build --release --locked -p latebird-lambda --bin bootstrap --target "$target"
  cp "$CARGO_TARGET_DIR/$target/release/bootstrap" "$stage/bootstrap"
  aarch64-linux-gnu-strip "$stage/bootstrap"
else
  cargo build --release --locked -p latebird-lambda --bin bootstrap
  cp "$CARGO_TARGET_DIR/release/bootstrap" "$stage/bootstrap"
  strip "$stage/bootstrap"
fi
chmod 755 "$stage/bootstrap"

# Only libraries every Amazon Linux 2023 image has, and glibc symbols up to 2.34 (readelf
# reads the binary of either architecture).
allowed="^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|$loader\.so\.[12])\$"
needed="$(readelf -d "$stage/bootstrap" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
if echo "$needed" | grep -Ev "$allowed" | grep -q .; then
  echo "bootstrap needs libraries Lambda may lack:" >&2
  echo "$needed" | grep -Ev "$allowed" >&2
  exit 1
fi
versions="$(readelf -W --dyn-syms "$stage/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV)"
newest="$(tail -1 <<<"$versions")"
if [ "$(printf '%s\n2.34\n' "$newest" | sort -V | tail -1)" != "2.34" ]; then
  echo "bootstrap needs glibc $newest; provided.al2023 has 2.34:" >&2
  readelf -W --dyn-syms "$stage/bootstrap" | grep -E "GLIBC_2\.(3[5-9]|[4-9][0-9])" >&2
  exit 1
fi

if [ -n "$model" ]; then
  mkdir -p "$stage/model"
  (cd "$model" && find . -type f \( -name '*.json' -o -name '*.safetensors' -o -name '*.txt' \) \
    -exec install -D -m 644 {} "$OLDPWD/$stage/model/{}" \;)
fi

mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$stage" && zip -q -r -X "$OLDPWD/$out" .)
bin_size="$(stat -c %s "$stage/bootstrap")"
zip_size="$(stat -c %s "$out")"
echo "bootstrap ($arch): $((bin_size / 1024)) KiB, needs glibc <= $newest; ${out}: $((zip_size / 1024)) KiB"

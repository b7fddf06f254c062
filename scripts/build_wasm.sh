#!/usr/bin/env bash
# Builds the WebAssembly package of latebird into crates/wasm/pkg/ (wasm-bindgen, target `web`:
# `await init()` in browsers, `initSync({ module })` in Node). Installs what it needs on a fresh
# Debian machine; safe to run again (each step is skipped when already done).
#
#   bash scripts/build_wasm.sh            # release build with SIMD (+simd128)
#
# Toolchain: rustup's wasm32-unknown-unknown target when it is installed; otherwise Debian's
# rustc-web/cargo-web with the standard library compiled from source (-Z build-std), because
# rustup cannot download the prebuilt wasm32 standard library on the project's machines
# (see docs/toolchain notes). That build uses its own target dir, so it never
# invalidates the host build's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/crates/wasm/pkg"
TARGET=wasm32-unknown-unknown
FEATURES="${LATEBIRD_WASM_FEATURES:-+simd128}"
# Outside the clone, beside the native build cache (scripts/env.sh), so fresh clones reuse it.
CACHE="${LATEBIRD_WASM_TARGET_DIR:-$HOME/.cache/latebird}"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[build_wasm] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and no apt-get: install them (or rustup's $TARGET target) first"
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing ${missing[*]} with apt-get"
  if [ "$apt_updated" -eq 0 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# --- 1. Compile crates/wasm to a .wasm module ---------------------------------------------
start=$(date +%s)
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "rustup's $TARGET target"
  TARGET_DIR="$CACHE/wasm-rustup"
  RUSTFLAGS="-C target-feature=$FEATURES" \
    cargo build --release --locked -p latebird-wasm --target "$TARGET" --target-dir "$TARGET_DIR"
else
  say "Debian's rustc-web with the standard library built from source"
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  TARGET_DIR="$CACHE/wasm"
  # RUSTC_BOOTSTRAP lets Debian's stable cargo use -Z build-std (the only way to get a wasm32
  # std here); std is then compiled with the same target features as everything else.
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C target-feature=$FEATURES" \
    /usr/bin/cargo build --release --locked -p latebird-wasm --target "$TARGET" \
    --target-dir "$TARGET_DIR" -Z build-std=std,panic_abort
fi
WASM="$TARGET_DIR/$TARGET/release/latebird_wasm.wasm"
say "compiled in $(($(date +%s) - start)) s"

# --- 2. wasm-bindgen-cli, exactly the version of the wasm-bindgen crate in Cargo.lock -------
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
  say "wasm-bindgen not found in Cargo.lock"
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  say "installing wasm-bindgen-cli $version"
  # --locked first; the registry mirror may lack a version the CLI's own lockfile pins
  # (webpki-roots 1.0.11 for 0.2.130), in which case cargo resolves its dependencies afresh.
  cargo install wasm-bindgen-cli --version "$version" --locked --quiet ||
    cargo install wasm-bindgen-cli --version "$version" --quiet
fi

# --- 3. JS glue, TypeScript types, package.json ---------------------------------------
rm -rf "$OUT"
wasm-bindgen --target web --out-dir "$OUT" "$WASM"
# No wasm-opt: Debian's binaryen (108) cannot parse wasm-bindgen 0.2.130's output (table.fill),
# and on the module before wasm-bindgen it saves only ~7% of the gzipped size.
pkg_version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
cat > "$OUT/package.json" <<EOF
{
  "name": "latebird-wasm",
  "version": "$pkg_version",
  "description": "PyLate-exact late-interaction (ColBERT) encoders in WebAssembly",
  "license": "Apache-2.0",
  "type": "module",
  "main": "latebird_wasm.js",
  "types": "latebird_wasm.d.ts",
  "files": ["latebird_wasm.js", "latebird_wasm.d.ts", "latebird_wasm_bg.wasm", "latebird_wasm_bg.wasm.d.ts"],
  "sideEffects": ["./snippets/*"]
}
EOF
size=$(stat -c %s "$OUT/latebird_wasm_bg.wasm")
gz=$(gzip -9 -c "$OUT/latebird_wasm_bg.wasm" | wc -c)
say "wrote $OUT (latebird_wasm_bg.wasm: $size bytes, $gz gzipped; features $FEATURES) in $(($(date +%s) - start)) s"

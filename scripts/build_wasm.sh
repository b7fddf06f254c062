#!/usr/bin/env bash
# Builds the npm package of latebird's WebAssembly engine into crates/wasm/pkg/: four builds
# (wasm-bindgen, target `web`), each in a folder of its own, and the entry point that picks
# one at run time (crates/wasm/js/index.js):
#   simd             +simd128                            one thread
#   relaxed          +simd128,+relaxed-simd              one thread, fused multiply-add
#   threads          +simd128,+atomics,+bulk-memory      Web Workers sharing the memory
#   threads-relaxed  both
# Installs what it needs on a fresh Debian machine; safe to run again (each step is skipped
# when already done).
#
#   bash scripts/build_wasm.sh                   # all four
#   LATEBIRD_WASM_BUILDS="simd relaxed" bash scripts/build_wasm.sh
#
# Toolchain: the standard library is compiled from source (-Z build-std) for every build, as
# the threaded ones need (std with atomics): with rustup's toolchain when it has the
# wasm32-unknown-unknown target and the rust-src component, otherwise with Debian's
# rustc-web/cargo-web (rustup cannot download the wasm32 standard library on some machines;
# see docs/toolchain notes). Each build has its own target dir outside the clone, so none
# invalidates another's cache or the host build's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/crates/wasm/pkg"
TARGET=wasm32-unknown-unknown
BUILDS="${LATEBIRD_WASM_BUILDS:-simd relaxed threads threads-relaxed}"
# Outside the clone, beside the native build cache (scripts/env.sh), so fresh clones reuse it.
CACHE="${LATEBIRD_WASM_TARGET_DIR:-$HOME/.cache/latebird}"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[build_wasm] %s\n' "$*" >&2; }

# shellcheck source=scripts/apt.sh
source scripts/apt.sh

# --- 1. The toolchain ------------------------------------------------------------------------
start=$(date +%s)
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$TARGET" &&
  rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  say "rustup's $TARGET target and rust-src"
  RUST=(env RUSTC_BOOTSTRAP=1 cargo)
  CACHE="$CACHE/rustup-"
else
  say "Debian's rustc-web with the standard library built from source (no rustup $TARGET target with rust-src)"
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  # RUSTC_BOOTSTRAP lets Debian's stable cargo use -Z build-std.
  RUST=(env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo)
  CACHE="$CACHE/"
fi

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

# --- 3. Each build: compile, then JS glue and TypeScript types into pkg/<build>/ ------------
# Two builds at a time (LATEBIRD_WASM_JOBS): each spends most of its time in single-threaded
# codegen (codegen-units = 1), so a pair takes little longer than one.
JOBS="${LATEBIRD_WASM_JOBS:-2}"
LOGS="${CACHE}wasm-logs"
rm -rf "$OUT"
mkdir -p "$OUT" "$LOGS"
build_one() {
  local build="$1" features="+simd128" cargo_features=() link=()
  case "$build" in
    simd | threads) ;;
    relaxed | threads-relaxed) features+=",+relaxed-simd" ;;
    *)
      say "unknown build $build (expected simd, relaxed, threads, threads-relaxed)"
      return 2
      ;;
  esac
  if [[ "$build" == threads* ]]; then
    features+=",+atomics,+bulk-memory,+mutable-globals"
    cargo_features=(--features threads)
    # A shared memory (rustc does not ask the linker for one), whose maximum it must declare:
    # 4 GiB, the most a wasm32 memory can hold; and the thread-local storage symbols that
    # wasm-bindgen's thread support initialises on each worker.
    link=(-C link-arg=--shared-memory -C link-arg=--max-memory=4294967296
      -C link-arg=--import-memory)
    for symbol in __wasm_init_tls __tls_size __tls_align __tls_base; do
      link+=(-C "link-arg=--export=$symbol")
    done
  fi
  local t0 target_dir
  t0=$(date +%s)
  target_dir="${CACHE}wasm-$build"
  RUSTFLAGS="-C target-feature=$features ${link[*]}" \
    "${RUST[@]}" build --release --locked -p latebird-wasm "${cargo_features[@]}" \
    --target "$TARGET" --target-dir "$target_dir" -Z build-std=std,panic_abort
  wasm-bindgen --target web --out-dir "$OUT/$build" "$target_dir/$TARGET/release/latebird_wasm.wasm"
  # No wasm-opt: Debian's binaryen (108) cannot parse wasm-bindgen 0.2.130's output (table.fill),
  # and on the module before wasm-bindgen it saves only ~7% of the gzipped size.
  local size gz
  size=$(stat -c %s "$OUT/$build/latebird_wasm_bg.wasm")
  gz=$(gzip -9 -c "$OUT/$build/latebird_wasm_bg.wasm" | wc -c)
  say "$build ($features): $size bytes, $gz gzipped, in $(($(date +%s) - t0)) s"
}
declare -A pids=()
failed=0
finish() { # waits for the build $1 and shows its log if it failed
  if ! wait "${pids[$1]}"; then
    say "the $1 build failed; its log ($LOGS/$1.log) ends with:"
    tail -n 40 "$LOGS/$1.log" >&2
    failed=1
  fi
  unset "pids[$1]"
}
for build in $BUILDS; do
  while [ "${#pids[@]}" -ge "$JOBS" ]; do
    # the oldest running build
    for running in $BUILDS; do
      if [ -n "${pids[$running]:-}" ]; then
        finish "$running"
        break
      fi
    done
  done
  say "building $build (log: $LOGS/$build.log)"
  build_one "$build" >"$LOGS/$build.log" 2>&1 &
  pids[$build]=$!
done
for build in $BUILDS; do
  if [ -n "${pids[$build]:-}" ]; then finish "$build"; fi
done
for build in $BUILDS; do
  grep -h '^\[build_wasm\]' "$LOGS/$build.log" >&2 || true
done
[ "$failed" -eq 0 ] || exit 1

# --- 4. The package: entry point, types, README, package.json --------------------------------
cp crates/wasm/js/index.js crates/wasm/js/index.d.ts "$OUT/"
cp crates/wasm/README.md "$OUT/README.md"
pkg_version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
python3 - "$OUT" "$pkg_version" $BUILDS <<'PY'
import json, sys
out, version, builds = sys.argv[1], sys.argv[2], sys.argv[3:]
exports = {".": {"types": "./index.d.ts", "default": "./index.js"}}
files = ["index.js", "index.d.ts", "README.md"]
for build in builds:
    exports[f"./{build}"] = {
        "types": f"./{build}/latebird_wasm.d.ts",
        "default": f"./{build}/latebird_wasm.js",
    }
    files.append(f"{build}/")
exports["./package.json"] = "./package.json"
package = {
    "name": "latebird-wasm",
    "version": version,
    "description": "PyLate-exact late-interaction (ColBERT) encoders in WebAssembly, "
    "multi-threaded in the browser",
    "license": "Apache-2.0",
    "type": "module",
    "main": "./index.js",
    "types": "./index.d.ts",
    "exports": exports,
    "files": files,
    "sideEffects": False,
    "engines": {"node": ">=18"},
    "keywords": ["colbert", "late-interaction", "retrieval", "embeddings", "webassembly", "pylate"],
}
with open(f"{out}/package.json", "w") as f:
    json.dump(package, f, indent=2)
    f.write("\n")
PY
say "wrote $OUT ($BUILDS) in $(($(date +%s) - start)) s"

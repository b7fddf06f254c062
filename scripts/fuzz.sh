#!/usr/bin/env bash
# Builds the libFuzzer targets under fuzz/ and runs each for a bounded time.
#   bash scripts/fuzz.sh                      # every target, 60 s each (CI)
#   bash scripts/fuzz.sh --seconds 600        # longer local run
#   bash scripts/fuzz.sh --target scoring     # one target (repeatable)
#   bash scripts/fuzz.sh --jobs 2             # parallel libFuzzer workers per target
# Exits non-zero when a target finds a crash, a panic, an OOM or a timeout, and prints the
# reproducer's path; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET PATH   (in fuzz/)
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors config tokenizer scoring)
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
# Outside the clone, so that a fresh clone (CI) reuses the instrumented dependencies.
target_dir="${LATEBIRD_FUZZ_TARGET_DIR:-$HOME/.cache/latebird/fuzz-target}"
# Debug assertions on (-a): integer overflow in the engine is a finding too.
build=(--target-dir "$target_dir" -a)

# Per target: the largest input worth trying. safetensors holds a whole 450 KB backbone
# file in its seed corpus; the configs and texts are small.
max_len() {
  case "$1" in
    safetensors) echo 1048576 ;;
    tokenizer) echo 65536 ;;
    config) echo 8192 ;;
    *) echo 16384 ;;
  esac
}

cd fuzz
echo "==> building fuzz targets: ${targets[*]}"
# One build for all targets: they share the instrumented engine.
cargo fuzz build "${build[@]}"

failed=()
for t in "${targets[@]}"; do
  artifacts="$ROOT/fuzz/artifacts/$t"
  mkdir -p "$artifacts"
  # New inputs go to a scratch corpus outside the clone; the committed seeds stay as they are.
  work="$target_dir/corpus/$t"
  mkdir -p "$work"
  log="$target_dir/logs/$t.log"
  mkdir -p "$(dirname "$log")"
  echo "==> fuzzing $t for ${seconds}s (log: $log)"
  before="$(ls -1 "$artifacts" | wc -l)"
  parallel=()
  # libFuzzer's -jobs sends each worker's output to fuzz-N.log in the current folder.
  if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
  fi
  set +e
  cargo fuzz run "${build[@]}" "$t" "$work" "$ROOT/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" \
    -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 \
    -timeout=10 \
    -max_len="$(max_len "$t")" \
    "${parallel[@]}" \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1
  status=$?
  set -e
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" | tail -4 || true
  after="$(ls -1 "$artifacts" | wc -l)"
  if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "!! $t: finding (exit $status); last lines of $log:" >&2
    tail -40 "$log" >&2
    for f in $(ls -1t "$artifacts" | head -5); do
      echo "!! reproducer: $artifacts/$f" >&2
      echo "   replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -a $t $artifacts/$f)" >&2
    done
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "==> no findings in: ${targets[*]}"

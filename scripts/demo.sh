#!/usr/bin/env bash
# The main job on a fresh machine: set up, build the Python package and the default test
# model, then encode the bundled example queries and documents and print the ranking.
#   bash scripts/demo.sh [--top K] [--model DIR] [--queries FILE] [--documents FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
python scripts/build_test_models.py
python -m pip install --quiet .
python examples/rank.py "$@"

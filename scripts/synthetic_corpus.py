#!/usr/bin/env python3
"""Writes N synthetic short documents as JSONL ({"id", "text"}), deterministic from a seed:
the corpus of the scale figures (README, "Large corpora").

    python scripts/synthetic_corpus.py 100000 /tmp/docs-100k.jsonl
"""

from __future__ import annotations

import argparse
import json
import random

WORDS = (
    "late interaction retrieval model token vector index query document search score "
    "corpus shard stream batch encode rank embedding matrix cluster node worker memory "
    "disk resume manifest arrow parquet spark ray engine thread core time rate"
).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--words", type=int, nargs=2, default=(8, 24), help="min and max words")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.output, "w", encoding="utf-8") as f:
        for i in range(args.count):
            n = rng.randint(*args.words)
            text = " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."
            f.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")


if __name__ == "__main__":
    main()

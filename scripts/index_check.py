#!/usr/bin/env python3
"""latebird's embeddings in PyLate's PLAID index (fast-plaid) give PyLate's own search results.

Run it with a Python that has PyLate 1.6, torch and fast-plaid (scripts/index_check.sh finds
or makes one) and latebird importable:

    python scripts/index_check.py [--data ../shared/data/abstracts.jsonl] [--model DIR]

The corpus is a JSONL file of {"id", "title", "abstract"}: the abstracts are the documents
and the titles the queries. Two pipelines run on it:

- PyLate: `models.ColBERT.encode` -> `indexes.PLAID` -> `retrieve.ColBERT.retrieve(k=10)`;
- latebird: `latebird encode` (the CLI) writes the documents as sharded Parquet and the
  queries as npz; those files are read back into the same kind of PLAID index and searched
  with the same retriever.

Both indexes use the same settings (fast-plaid, PyLate's defaults, seed 42, no Triton
kernels, one thread) and the same state of torch's global generator, from which fast-plaid
draws its k-means sample: without that, two builds from the very same PyLate embeddings
disagree on the top 10 of most of these queries (4-bit residuals, about 1,000 centroids for
13,000 tokens), and the check would compare noise. The check passes when every query's top 10 ids come back in the same
order, and prints the largest embedding and score differences. Exit code 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "abstracts.jsonl"
DEFAULT_MODEL = REPO / "tests" / "models" / "minilm-colbert"


def read_corpus(path: Path) -> tuple[list[str], list[str], list[str]]:
    ids, titles, abstracts = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                ids.append(str(record["id"]))
                titles.append(record["title"])
                abstracts.append(record["abstract"])
    return ids, titles, abstracts


def latebird_cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "python"), *sys.path])}
    subprocess.run([sys.executable, "-m", "latebird", *args], check=True, env=env)


def plaid_search(
    folder: Path, name: str, ids, documents, queries, k: int, nbits: int
) -> list[list[dict]]:
    import torch
    from pylate import indexes, retrieve

    # fast-plaid samples the documents for k-means with torch's global generator: the same
    # state for both indexes, or they are clustered from differently ordered samples.
    torch.manual_seed(0)
    index = indexes.PLAID(
        index_folder=str(folder),
        index_name=name,
        override=True,
        use_fast=True,
        nbits=nbits,
        seed=42,
        use_triton=False,
        device="cpu",
        num_threads=1,
        show_progress=False,
    )
    index.add_documents(documents_ids=ids, documents_embeddings=documents)
    return retrieve.ColBERT(index=index).retrieve(queries_embeddings=queries, k=k)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nbits", type=int, default=4, help="PLAID residual bits (PyLate's 4)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"index_check: {args.data} not found (give --data)", file=sys.stderr)
        return 2

    import torch

    sys.path.insert(0, str(REPO / "python"))
    import latebird
    from latebird.parquet import read_embeddings
    from pylate import models

    torch.set_num_threads(int(os.environ.get("RAYON_NUM_THREADS", "2")))
    ids, titles, abstracts = read_corpus(args.data)
    print(f"{len(ids)} documents and queries from {args.data}; model {args.model}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        latebird_cli("encode", "--model", str(args.model), "--documents", str(args.data),
                     "--field", "abstract", "--output", str(work / "documents"),
                     "--format", "parquet", "--shard-size", "32")  # fmt: skip
        latebird_cli("encode", "--model", str(args.model), "--queries", str(args.data),
                     "--field", "title", "--output", str(work / "queries.npz"))  # fmt: skip
        shard_ids, lb_documents = read_embeddings(work / "documents")
        with np.load(work / "queries.npz") as z:
            lb_queries = [z[f"embedding_{i}"] for i in range(len(z["ids"]))]
        assert shard_ids == ids, "the Parquet shards do not hold the corpus ids in order"
        print(f"latebird {latebird.__version__}: encoded in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        model = models.ColBERT(str(args.model), device="cpu")
        py_documents = model.encode(abstracts, is_query=False, show_progress_bar=False)
        py_queries = model.encode(titles, is_query=True, show_progress_bar=False)
        print(f"PyLate: encoded in {time.perf_counter() - start:.1f} s")
        emb_diff = max(
            float(np.abs(a - np.asarray(b)).max())
            for a, b in zip(lb_documents + lb_queries, list(py_documents) + list(py_queries))
        )

        start = time.perf_counter()
        ours = plaid_search(
            work / "index", "latebird", ids, lb_documents, lb_queries, args.k, args.nbits
        )
        theirs = plaid_search(
            work / "index", "pylate", ids, list(py_documents), py_queries, args.k, args.nbits
        )
        print(f"two PLAID indexes built and searched in {time.perf_counter() - start:.1f} s")

    same = 0
    score_diff = 0.0
    for title, a, b in zip(titles, ours, theirs):
        if [r["id"] for r in a] == [r["id"] for r in b]:
            same += 1
            score_diff = max(
                score_diff, max(abs(float(x["score"]) - float(y["score"])) for x, y in zip(a, b))
            )
        else:
            print(f"differs for query {title!r}:\n  latebird {[r['id'] for r in a]}\n"
                  f"  PyLate   {[r['id'] for r in b]}")  # fmt: skip
    print(f"largest embedding difference latebird vs PyLate: {emb_diff:.2e}")
    print(f"same top {args.k} (ids, in order): {same}/{len(titles)} queries; "
          f"largest score difference: {score_diff:.2e}")  # fmt: skip
    return 0 if same == len(titles) else 1


if __name__ == "__main__":
    sys.exit(main())

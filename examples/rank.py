"""Encode the bundled example queries and documents, then rank the documents for each query.

python examples/rank.py [--model DIR] [--queries FILE] [--documents FILE] [--top K]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(HERE.parent / "tests" / "models" / "minilm-colbert"))
    parser.add_argument("--queries", default=str(HERE / "data" / "queries.txt"))
    parser.add_argument("--documents", default=str(HERE / "data" / "documents.txt"))
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args()

    queries = [line for line in Path(args.queries).read_text().splitlines() if line.strip()]
    documents = [line for line in Path(args.documents).read_text().splitlines() if line.strip()]

    start = time.perf_counter()
    import latebird
    import latebird.scores

    imported = time.perf_counter()
    model = latebird.ColBERT(args.model)
    loaded = time.perf_counter()
    query_embeddings = model.encode(queries, is_query=True)
    encoded_queries = time.perf_counter()
    document_embeddings = model.encode(documents, is_query=False)
    encoded_documents = time.perf_counter()
    scores = latebird.scores.colbert_scores(query_embeddings, document_embeddings)
    scored = time.perf_counter()

    for qi, query in enumerate(queries):
        print(f"\nquery: {query}")
        for rank, di in enumerate(np.argsort(-scores[qi], kind="stable")[: args.top], start=1):
            text = documents[di]
            print(f"  {rank}. {scores[qi, di]:7.3f}  {text[:90]}{'...' if len(text) > 90 else ''}")

    tokens = sum(d.shape[0] for d in document_embeddings)
    print(
        f"\nlatebird {latebird.__version__}: import {1000 * (imported - start):.0f} ms, "
        f"load {1000 * (loaded - imported):.0f} ms, "
        f"{len(queries)} queries {1000 * (encoded_queries - loaded):.0f} ms, "
        f"{len(documents)} documents ({tokens} tokens) "
        f"{1000 * (encoded_documents - encoded_queries):.0f} ms, "
        f"scoring {1000 * (scored - encoded_documents):.1f} ms"
    )


if __name__ == "__main__":
    main()

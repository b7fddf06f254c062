"""Makes tests/fixtures/retrieval/minilm-colbert.json: PyLate's retrieval results on the
abstracts collection, for tests/python/test_retrieval.py.

Run with a PyLate environment (scripts/requirements-references.txt):

    /work/venv-ref/bin/python scripts/make_retrieval_references.py [--data PATH]

The data file (default: ../shared/data/abstracts.jsonl from the repository root) holds one
{"id", "title", "abstract"} object per line. Each title is a query; its own abstract is the one
relevant document. The abstracts are encoded once with PyLate on tests/models/minilm-colbert;
for pool_factor 1, 2 and 3 the encodings are pooled with PyLate's pool_embeddings_hierarchical
(what encode(..., pool_factor=f) does) and every query is ranked against every document with
PyLate's rank.rerank. The fixture stores ids and numbers only (no text): the sha256 of the data
file, per pool factor each query's top-10 document ids and scores, the pooled row count of every
document, recall@1 and MRR@10.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "abstracts.jsonl"
MODEL = REPO / "tests" / "models" / "minilm-colbert"
OUT = REPO / "tests" / "fixtures" / "retrieval" / "minilm-colbert.json"
POOL_FACTORS = (1, 2, 3)
TOP = 10


def metrics(ranked_ids: list[list[int]], query_ids: list[int]) -> dict[str, float]:
    """recall@1 and MRR@10 with one relevant document per query (the one with its id)."""
    recall, mrr = 0.0, 0.0
    for ids, qid in zip(ranked_ids, query_ids):
        recall += float(ids[0] == qid)
        if qid in ids[:TOP]:
            mrr += 1.0 / (ids.index(qid) + 1)
    n = len(query_ids)
    return {"recall@1": recall / n, "mrr@10": mrr / n}


def compact(text: str) -> str:
    """Joins the lines of innermost JSON lists (numbers only) into one line each."""
    import re

    return re.sub(
        r"\[\s*([-0-9.e,\s]*?)\s*\]",
        lambda m: (
            "[" + ",".join(x.strip() for x in m.group(1).split(",")) + "]"
            if m.group(1).strip()
            else "[]"
        ),
        text,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"{args.data}: missing", file=sys.stderr)
        return 1
    if not (MODEL / "modules.json").is_file():
        print(f"{MODEL}: missing; run scripts/build_test_models.py first", file=sys.stderr)
        return 1

    import pylate
    from pylate import models, rank

    raw = args.data.read_bytes()
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    ids = [int(r["id"]) for r in records]
    if len(set(ids)) != len(ids):
        raise SystemExit("ids are not unique")

    torch.manual_seed(0)
    model = models.ColBERT(
        model_name_or_path=str(MODEL),
        device="cpu",
        model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32},
    )
    start = time.perf_counter()
    kw = {"batch_size": 32, "convert_to_numpy": True, "show_progress_bar": False}
    queries = model.encode([r["title"] for r in records], is_query=True, **kw)
    documents = model.encode([r["abstract"] for r in records], is_query=False, **kw)
    print(f"encoded {len(records)} queries and documents in {time.perf_counter() - start:.1f} s")

    out: dict = {
        "data": {"file": args.data.name, "sha256": hashlib.sha256(raw).hexdigest()},
        "model": "minilm-colbert",
        "query_ids": ids,
        "top": TOP,
        "versions": {"pylate": pylate.__version__, "torch": torch.__version__},
        "settings": {
            "encode": "batch_size 32, attn_implementation sdpa, float32, CPU",
            "pooling": "pool_embeddings_hierarchical(documents, pool_factor, protected_tokens=1)",
            "ranking": "rank.rerank with every document as a candidate of every query",
            "relevant": "the document with the query's id",
        },
        "pool_factors": {},
    }
    for factor in POOL_FACTORS:
        if factor == 1:
            pooled = [torch.from_numpy(np.asarray(d, dtype=np.float32)) for d in documents]
        else:
            pooled = model.pool_embeddings_hierarchical(
                [torch.from_numpy(np.asarray(d, dtype=np.float32)) for d in documents],
                pool_factor=factor,
                protected_tokens=1,
            )
        ranked = rank.rerank(
            documents_ids=[ids] * len(queries),
            queries_embeddings=[torch.from_numpy(np.asarray(q)) for q in queries],
            documents_embeddings=[pooled] * len(queries),
        )
        top_ids = [[int(r["id"]) for r in result[:TOP]] for result in ranked]
        # The shortest decimal that reads back as the same float32.
        top_scores = [
            [float(str(np.float32(r["score"]))) for r in result[:TOP]] for result in ranked
        ]
        # PyLate pads the candidates with zero rows (no mask), which can raise a score where
        # every dot product of a query row with a shorter document is negative: count those.
        raised = 0
        for q, result in zip(queries, ranked):
            for r in result[:TOP]:
                d = pooled[ids.index(int(r["id"]))].numpy()
                alone = float((np.asarray(q) @ d.T).max(axis=1).sum())
                raised += int(r["score"] - alone > 1e-5)
        m = metrics([[int(r["id"]) for r in result] for result in ranked], ids)
        out["pool_factors"][str(factor)] = {
            "document_rows": [len(p) for p in pooled],
            "top_ids": top_ids,
            "top_scores": top_scores,
            "top_scores_raised_by_padding": raised,
            **m,
        }
        rows = sum(len(p) for p in pooled)
        print(
            f"pool_factor {factor}: {rows} document rows, recall@1 {m['recall@1']:.4f}, "
            f"MRR@10 {m['mrr@10']:.4f}, top scores raised by padding: {raised}"
        )

    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One line per key and per list of lists' row: small and still readable in a diff.
    text = json.dumps(out, indent=1)
    OUT.write_text(compact(text) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

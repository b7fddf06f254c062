#!/usr/bin/env python3
"""Generate PyLate references for latebird's scoring, reranking and pooling tests.

Needs PyLate + torch + scipy (see scripts/requirements-references.txt) in a virtualenv outside
the repository, and the MiniLM test model (python scripts/build_test_models.py --out tests/models):

    python scripts/make_scoring_references.py            # writes tests/fixtures/scoring/
    python scripts/make_scoring_references.py --bench    # timing of colbert_scores only

Files (all float32 unless said otherwise):

<model>.safetensors, for minilm-colbert (tests/models) and modernbert-v4 (tests/fixtures/models),
with the texts of tests/fixtures/texts.json encoded by PyLate in one batch each:
  query.<i>, document.<j>       PyLate encode(is_query=True / False) outputs: the scoring inputs
  scores                        [n_queries, n_documents] colbert_scores (documents zero-padded,
                                with documents_mask, as PyLate does for ragged lists). The
                                masked padding counts 0 in the maximum, so a pair where some query
                                row has only negative dot products with a shorter document scores
                                higher than MaxSim over the real rows (see "padding" metadata)
  scores_unpadded               the same, each document scored alone (real rows only): latebird's
                                semantics
  rerank.<i>.candidates         int64: indices (into the documents) of query i's candidates
  rerank.<i>.input_ids          int64: the ids given to rank.rerank, in candidate order
  rerank.<i>.ids / .scores      int64 / f32: rank.rerank output, best first (rerank zero-pads the
                                candidates without a mask: same effect as above)
  rerank.<i>.raised_by_padding  int64: 1 where that output score is above the unpadded score
  pool<f>.<j>                   encode(is_query=False, pool_factor=f) output for document j
                                (its input is document.<j>)

synthetic.safetensors, pooling stress cases run through PyLate's pool_embeddings_hierarchical:
  <case>.input                  [rows, dim] input (first row protected)
  <case>.condensed              float64: the condensed 1 - cos distances scipy receives
  <case>.linkage                float64 [n-1, 4]: scipy linkage(condensed, "ward")
  <case>.labels_k<k>            int64: fcluster(linkage, t=k, criterion="maxclust")
  <case>.pool<f>                pooled output for pool_factor f
  "ties": 41 rows of dim 8 drawn from 6 exactly representable unit vectors (exact duplicate
  rows, exact equal distances and merge heights); "random": 301 random unit rows of dim 16.

Metadata: versions, texts, settings, and checks (rerank vs colbert_scores, padded vs per-pair
scores, pooled encode vs pool_embeddings_hierarchical on document.<j>).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
TEXTS = REPO / "tests" / "fixtures" / "texts.json"
OUT = REPO / "tests" / "fixtures" / "scoring"
MODELS = {
    "minilm-colbert": REPO / "tests" / "models" / "minilm-colbert",
    "modernbert-v4": REPO / "tests" / "fixtures" / "models" / "modernbert-v4",
}
POOL_FACTORS = (2, 3)


def versions() -> dict:
    import pylate
    import scipy
    import sentence_transformers
    import transformers

    return {
        "pylate": pylate.__version__,
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def f32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def padded_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """PyLate colbert_scores over ragged lists: zero padding plus masks."""
    from pylate.scores import colbert_scores

    def pad(mats):
        t = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(m) for m in mats], batch_first=True)
        mask = torch.zeros(t.shape[:2])
        for i, m in enumerate(mats):
            mask[i, : len(m)] = 1
        return t, mask

    q, qm = pad(queries)
    d, dm = pad(documents)
    return f32(colbert_scores(q, d, queries_mask=qm, documents_mask=dm, backend="torch"))


def unpadded_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """PyLate colbert_scores of every query against each document alone (no document padding;
    query padding is masked and harmless: masked rows add 0)."""
    from pylate.scores import colbert_scores

    q = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(m) for m in queries], batch_first=True)
    qm = torch.zeros(q.shape[:2])
    for i, m in enumerate(queries):
        qm[i, : len(m)] = 1
    cols = [
        colbert_scores(q, torch.from_numpy(d)[None], queries_mask=qm, backend="torch")[:, 0]
        for d in documents
    ]
    return f32(torch.stack(cols, dim=1))


def exact_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """Per-pair MaxSim on the real rows only, in float64."""
    out = np.zeros((len(queries), len(documents)))
    for i, q in enumerate(queries):
        for j, d in enumerate(documents):
            out[i, j] = (q.astype(np.float64) @ d.astype(np.float64).T).max(axis=1).sum()
    return out


def pool_reference(rows: np.ndarray, pool_factor: int) -> np.ndarray:
    from pylate import models

    pooled = models.ColBERT.pool_embeddings_hierarchical(
        None, [torch.from_numpy(rows)], pool_factor=pool_factor, protected_tokens=1
    )
    return f32(pooled[0])


def model_reference(name: str, folder: Path, texts: dict, vers: dict) -> Path:
    from pylate import models, rank

    model = models.ColBERT(
        model_name_or_path=str(folder),
        device="cpu",
        model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32},
    )
    queries, documents = texts["queries"], texts["documents"]

    def enc(items, is_query, **kw):
        out = model.encode(
            items,
            is_query=is_query,
            batch_size=len(items),
            convert_to_numpy=True,
            show_progress_bar=False,
            **kw,
        )
        return [f32(o) for o in out]

    q_emb = enc(queries, True)
    d_emb = enc(documents, False)
    tensors: dict[str, np.ndarray] = {}
    for i, e in enumerate(q_emb):
        tensors[f"query.{i}"] = e
    for j, e in enumerate(d_emb):
        tensors[f"document.{j}"] = e

    scores = padded_scores(q_emb, d_emb)
    unpadded = unpadded_scores(q_emb, d_emb)
    exact = exact_scores(q_emb, d_emb)
    tensors["scores"] = scores
    tensors["scores_unpadded"] = unpadded
    checks = {"unpadded_vs_exact_scores": float(np.abs(unpadded - exact).max())}
    # Zero padding counts 0 in the maximum: it only raises scores, where some query row has
    # only negative dot products with a shorter document.
    info = {
        "padded_minus_unpadded_max": float((scores - unpadded).max()),
        "padded_minus_unpadded_min": float((scores - unpadded).min()),
        "pairs_raised_by_padding": int(((scores - unpadded) > 1e-5).sum()),
    }

    # Rerank: a deterministic candidate subset per query; query 0 also gets one document twice
    # (under two ids) so that its ranking has an exact tie.
    rng = np.random.default_rng(1234)
    rerank_worst = 0.0
    for i, q in enumerate(q_emb):
        size = int(rng.integers(3, min(9, len(d_emb)) + 1))
        cands = [int(c) for c in rng.choice(len(d_emb), size=size, replace=False)]
        if i == 0:
            cands.append(cands[0])
        ids = [
            1000 * (i + 1) + 10 * c + (1 if k == len(cands) - 1 and i == 0 else 0)
            for k, c in enumerate(cands)
        ]
        out = rank.rerank(
            documents_ids=[ids],
            queries_embeddings=[q],
            documents_embeddings=[[d_emb[c] for c in cands]],
        )[0]
        tensors[f"rerank.{i}.candidates"] = np.array(cands, dtype=np.int64)
        tensors[f"rerank.{i}.input_ids"] = np.array(ids, dtype=np.int64)
        tensors[f"rerank.{i}.ids"] = np.array([r["id"] for r in out], dtype=np.int64)
        tensors[f"rerank.{i}.scores"] = np.array([r["score"] for r in out], dtype=np.float32)
        by_id = dict(zip(ids, cands))
        raised = [r["score"] - unpadded[i, by_id[r["id"]]] for r in out]
        tensors[f"rerank.{i}.raised_by_padding"] = np.array(
            [x > 1e-5 for x in raised], dtype=np.int64
        )
        rerank_worst = max(rerank_worst, -min(raised))
    # PyLate's rerank zero-pads the candidates without a mask: its scores are the unpadded ones
    # or higher, never lower.
    checks["rerank_below_unpadded"] = float(rerank_worst)

    for f in POOL_FACTORS:
        pooled = enc(documents, False, pool_factor=f)
        worst = 0.0
        for j, p in enumerate(pooled):
            tensors[f"pool{f}.{j}"] = p
            again = pool_reference(d_emb[j], f)
            if again.shape != p.shape:
                raise SystemExit(
                    f"{name}: pool{f}.{j}: encode and pool_embeddings_hierarchical disagree"
                )
            worst = max(worst, float(np.abs(again - p).max()) if p.size else 0.0)
        checks[f"pool{f}_encode_vs_pool_embeddings"] = worst

    print(f"  {name}: padding effect {info}")
    for k, v in checks.items():
        print(f"  {name}: {k} = {v:.3g}")
        if v > 1e-5:
            raise SystemExit(f"{name}: check {k} = {v} exceeds 1e-5")

    meta = {
        "model": name,
        "texts": json.dumps({"queries": queries, "documents": documents}, ensure_ascii=False),
        "pool_factors": json.dumps(list(POOL_FACTORS)),
        "checks": json.dumps(checks, sort_keys=True),
        "padding": json.dumps(info, sort_keys=True),
        "versions": json.dumps(vers, sort_keys=True),
        "settings": json.dumps(
            {
                "attn_implementation": "sdpa",
                "batch_size": "all texts in one batch",
                "protected_tokens": 1,
            }
        ),
    }
    return save(name, tensors, meta)


def synthetic_case(tensors: dict, case: str, rows: np.ndarray, pool_factors: list[int]) -> None:
    from scipy.cluster import hierarchy

    tensors[f"{case}.input"] = rows
    rest = torch.from_numpy(rows[1:])
    n = len(rest)
    # Exactly PyLate's distance computation.
    cos = torch.mm(rest, rest.t()).numpy()
    condensed = (1 - cos)[np.triu_indices(n, k=1)]
    tensors[f"{case}.condensed"] = condensed.astype(np.float64)
    z = hierarchy.linkage(condensed, method="ward")
    tensors[f"{case}.linkage"] = z.astype(np.float64)
    for f in pool_factors:
        k = max(n // f, 1)
        labels = hierarchy.fcluster(z, t=k, criterion="maxclust")
        tensors[f"{case}.labels_k{k}"] = labels.astype(np.int64)
        tensors[f"{case}.pool{f}"] = pool_reference(rows, f)
        print(f"  {case}: pool_factor {f}: k={k}, {labels.max()} clusters")


def synthetic_reference(vers: dict) -> Path:
    rng = np.random.default_rng(99)
    tensors: dict[str, np.ndarray] = {}

    palette = np.zeros((6, 8), dtype=np.float32)
    palette[0, 0] = 1
    palette[1, 1] = 1
    palette[2, 0] = -1
    palette[3, :4] = 0.5
    palette[4, :4] = [0.5, -0.5, 0.5, -0.5]
    palette[5, 5] = 1
    picks = rng.integers(0, len(palette), size=41)
    synthetic_case(tensors, "ties", palette[picks].copy(), [2, 3, 4, 7, 13])

    x = rng.standard_normal((301, 16)).astype(np.float32)
    x = f32(torch.nn.functional.normalize(torch.from_numpy(x), p=2, dim=1))
    synthetic_case(tensors, "random", x, [2, 3, 5])

    meta = {
        "versions": json.dumps(vers, sort_keys=True),
        "settings": json.dumps({"protected_tokens": 1, "seed": 99}),
    }
    return save("synthetic", tensors, meta)


def save(name: str, tensors: dict, meta: dict) -> Path:
    from safetensors.numpy import save_file

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=meta)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes, {len(tensors)} tensors)")
    return path


def bench(args) -> int:
    """Times PyLate's colbert_scores on random unit rows and saves the data and the scores for
    crates/core/examples/score_bench.rs (raw little-endian f32 files)."""
    from pylate.scores import colbert_scores

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(7)

    def unit(shape):
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        return torch.nn.functional.normalize(x, p=2, dim=-1).contiguous()

    q = unit((args.queries, 32, 128))
    d = unit((args.documents, 180, 128))
    out = Path(args.bench_dir)
    out.mkdir(parents=True, exist_ok=True)
    q.numpy().tofile(out / "queries.f32")
    d.numpy().tofile(out / "documents.f32")
    # colbert_scores materialises [queries, documents, 32, 180]: score in chunks of queries.
    chunk = args.chunk
    colbert_scores(q[:chunk], d, backend="torch")  # warm-up
    start = time.perf_counter()
    parts = [colbert_scores(q[i : i + chunk], d, backend="torch") for i in range(0, len(q), chunk)]
    elapsed = time.perf_counter() - start
    scores = torch.cat(parts).numpy()
    scores.astype(np.float32).tofile(out / "scores.f32")
    print(
        f"PyLate colbert_scores {args.queries} x {args.documents} (32 x 128 vs 180 x 128), "
        f"{args.threads} threads, chunks of {chunk} queries: {elapsed:.2f} s"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true", help="time colbert_scores instead")
    parser.add_argument("--bench-dir", default="/tmp/latebird-bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=16)
    args = parser.parse_args()
    if args.bench:
        return bench(args)

    torch.manual_seed(0)
    vers = versions()
    print("versions:", vers)
    texts = json.loads(TEXTS.read_text(encoding="utf-8"))
    for name, folder in MODELS.items():
        if not (folder / "modules.json").is_file():
            print(f"{folder}: missing; run scripts/build_test_models.py first", file=sys.stderr)
            return 1
        model_reference(name, folder, texts, vers)
    synthetic_reference(vers)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side CPU benchmark: latebird against PyLate (PyTorch) on the same model and texts.

    python scripts/benchmark.py [--model DIR] [--threads 2] [--systems latebird,pylate]

Each system runs in its own fresh process with the same thread count, so cold start includes
the imports. Texts: ../shared/data/abstracts.jsonl when present (titles as queries, abstracts
as documents), else generated texts of similar lengths. Prints a Markdown table of documents/s
and queries/s (batch 32), single-query latency (p50, p99), cold start and peak RSS, plus the
ratios latebird / peer. PyLate must be importable by the Python given with --pylate-python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABSTRACTS = ROOT.parent / "shared" / "data" / "abstracts.jsonl"

# Runs inside the measured process: prints one JSON line of figures.
WORKER = r"""
import json, os, resource, sys, time
start = time.perf_counter()
system, model_dir, texts_file, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = json.load(open(texts_file))
queries, documents = texts["queries"], texts["documents"]
if system == "latebird":
    import latebird
    model = latebird.ColBERT(model_dir)
    def encode(xs, is_query, batch_size=32):
        return model.encode(xs, is_query=is_query, batch_size=batch_size, show_progress_bar=False)
else:
    import torch
    torch.set_num_threads(threads)
    from pylate import models
    model = models.ColBERT(model_dir, device="cpu",
                           model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32})
    def encode(xs, is_query, batch_size=32):
        return model.encode(xs, is_query=is_query, batch_size=batch_size, show_progress_bar=False)
encode([queries[0]], True)
cold = time.perf_counter() - start
def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out
encode(documents[:8], False)
doc_s, outs = timed(lambda: encode(documents, False))
rows = sum(len(o) for o in outs)
query_s, _ = timed(lambda: encode(queries, True))
lat = sorted(timed(lambda q=q: encode([q], True))[0] for q in queries[:64])
print(json.dumps({
    "cold_start_s": cold, "docs_per_s": len(documents) / doc_s, "queries_per_s": len(queries) / query_s,
    "latency_p50_ms": 1e3 * lat[len(lat) // 2], "latency_p99_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "document_rows": rows,
}))
"""


def load_texts(n: int) -> tuple[dict[str, list[str]], str]:
    if ABSTRACTS.is_file():
        rows = [json.loads(line) for line in ABSTRACTS.read_text().splitlines() if line.strip()]
        return (
            {"queries": [r["title"] for r in rows], "documents": [r["abstract"] for r in rows]},
            f"{ABSTRACTS.name} ({len(rows)} titles / abstracts)",
        )
    rng = random.Random(0)
    words = "model token retrieval vector late interaction encoder score query document".split()
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(120, 220))) for _ in range(n)]
    queries = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) for _ in range(n)]
    return {"queries": queries, "documents": docs}, f"generated ({n} texts)"


def run(python: str, system: str, model: Path, texts: Path, threads: int) -> dict[str, float]:
    env = {
        **os.environ,
        "RAYON_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [python, "-c", WORKER, system, str(model), str(texts), str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "tests" / "models" / "minilm-colbert")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--systems", default="latebird,pylate")
    parser.add_argument("--latebird-python", default=sys.executable)
    parser.add_argument("--pylate-python", default=sys.executable)
    parser.add_argument("--texts", type=int, default=88, help="generated texts when no data file")
    args = parser.parse_args()

    texts, source = load_texts(args.texts)
    texts_file = ROOT / "target" / "benchmark-texts.json"
    texts_file.parent.mkdir(parents=True, exist_ok=True)
    texts_file.write_text(json.dumps(texts))
    pythons = {"latebird": args.latebird_python, "pylate": args.pylate_python}
    results = {}
    for system in args.systems.split(","):
        results[system] = run(pythons[system], system, args.model, texts_file, args.threads)

    print(f"model: {args.model.name}; texts: {source}; threads: {args.threads}; float32")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    keys = list(next(iter(results.values())))
    print("| figure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{r[key]:.3g}" for r in results.values()) + " |")
    if "latebird" in results and "pylate" in results:
        lb, py = results["latebird"], results["pylate"]
        print(
            f"\nratios latebird/pylate: documents/s {lb['docs_per_s'] / py['docs_per_s']:.2f}x, "
            f"queries/s {lb['queries_per_s'] / py['queries_per_s']:.2f}x, "
            f"p50 latency {lb['latency_p50_ms'] / py['latency_p50_ms']:.2f} of PyLate's, "
            f"cold start {lb['cold_start_s'] / py['cold_start_s']:.3f} of PyLate's"
        )


if __name__ == "__main__":
    main()

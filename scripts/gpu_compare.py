"""latebird on an NVIDIA GPU (float32, bfloat16, float16) beside PyLate on torch CUDA (float32).

    python scripts/gpu_compare.py [--model DIR] [--documents 500] [--latency-samples 200]
        [--cold-starts 3] [--latebird-python PY] [--pylate-python PY] [--cuda-lib DIR]
        [--device cuda]

(`bash scripts/gpu_check.sh` sets up a machine with a GPU and runs this.)

Every system runs in fresh processes of its own on --device (default: GPU 0), with the same
texts (those of scripts/benchmark.py: ../shared/data/abstracts.jsonl when present, else
generated) and batch size. Figures: documents/s (best of --rounds passes over the documents,
after a warm-up batch), single-query latency p50/p99 (one query per call, after ten warm-up
calls), cold start (from spawning a process to its first query's embedding: interpreter,
imports, model load onto the GPU and the first kernels; median of --cold-starts processes),
and the largest absolute difference and the least token cosine of each system's embeddings
against PyLate's, over the first --check documents and queries. Prints one markdown table.

--cuda-lib is put first on LD_LIBRARY_PATH for the latebird processes only (the CUDA runtime
libraries latebird was linked against); PyLate's processes keep torch's own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
DEFAULT_MODEL = ROOT / "tests" / "models" / "minilm-colbert"
OUT = ROOT / "target" / "gpu-compare"
# System -> latebird precision (None: PyLate).
SYSTEMS = {
    "latebird": "float32",
    "latebird-bf16": "bfloat16",
    "latebird-f16": "float16",
    "pylate": None,
}
LABELS = {
    "latebird": "latebird f32",
    "latebird-bf16": "latebird bf16",
    "latebird-f16": "latebird f16",
    "pylate": "PyLate f32 (torch)",
}
WARMUP_QUERIES = 10


def open_model(system: str, model_dir: str, device: str, batch_size: int):
    """The model of `system` on `device`, as a function (texts, is_query) -> list of float32
    [tokens, dim] arrays on the host."""
    if SYSTEMS[system] is None:
        import torch
        from pylate import models

        model = models.ColBERT(
            model_name_or_path=model_dir,
            device=device,
            model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32},
        )

        def encode(texts, is_query):
            out = model.encode(
                texts, is_query=is_query, batch_size=batch_size, show_progress_bar=False
            )
            return [
                x.float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
                for x in out
            ]

        return encode
    import latebird

    if device.startswith("cuda") and "cuda" not in latebird.build_features:
        raise SystemExit(
            f"this latebird ({latebird.__file__}) was built without the cuda feature "
            f"(it has: {', '.join(latebird.build_features)})"
        )
    model = latebird.ColBERT(model_dir, device=device, precision=SYSTEMS[system])

    def encode(texts, is_query):
        return model.encode(
            texts, is_query=is_query, batch_size=batch_size, show_progress_bar=False
        )

    return encode


def worker(args) -> None:
    """One measured process: prints a JSON line of figures (only the first query's time when
    --rounds is 0, for a cold-start sample)."""
    texts = json.loads(Path(args.texts).read_text())
    queries, documents = texts["queries"], texts["documents"]
    encode = open_model(args.system, str(args.model), args.device, args.batch_size)
    encode([queries[0]], True)
    first_query = time.monotonic()
    if args.rounds == 0:
        print(json.dumps({"first_query_monotonic": first_query}))
        return
    encode(documents[: args.batch_size], False)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        docs_out = encode(documents, False)
        times.append(time.perf_counter() - start)
    queries_out = encode(queries[: args.check], True)
    for query in queries[:WARMUP_QUERIES]:
        encode([query], True)
    latency = []
    for i in range(args.latency_samples):
        query = [queries[i % len(queries)]]
        start = time.perf_counter()
        encode(query, True)
        latency.append(time.perf_counter() - start)
    latency.sort()
    np.savez(
        args.check_file,
        **{f"document.{i}": x for i, x in enumerate(docs_out[: args.check])},
        **{f"query.{i}": x for i, x in enumerate(queries_out)},
    )
    p99 = latency[min(len(latency) - 1, int(len(latency) * 0.99))]
    print(
        json.dumps(
            {
                "first_query_monotonic": first_query,
                "docs_per_s": len(documents) / min(times),
                "latency_p50_ms": 1e3 * latency[len(latency) // 2],
                "latency_p99_ms": 1e3 * p99,
            }
        )
    )


def measured(cmd: list[str], env: dict[str, str], what: str) -> dict:
    """Runs one measured process; returns the JSON object of its last output line (a
    RuntimeError naming `what` with the end of its stderr if it fails)."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(system: str, args, texts_file: Path) -> dict:
    python = args.pylate_python if SYSTEMS[system] is None else args.latebird_python
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if SYSTEMS[system] is not None and args.cuda_lib:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [args.cuda_lib, env.get("LD_LIBRARY_PATH")])
        )
    check_file = args.out / f"{system}.npz"
    cmd = [python, str(Path(__file__).resolve()), "--worker", system, "--model", str(args.model)]
    cmd += ["--texts", str(texts_file), "--check-file", str(check_file)]
    cmd += ["--device", args.device, "--batch-size", str(args.batch_size)]
    cmd += ["--check", str(args.check)]
    cmd += ["--latency-samples", str(args.latency_samples)]
    print(f"running {LABELS[system]} ...", file=sys.stderr)
    start = time.monotonic()
    result = measured([*cmd, "--rounds", str(args.rounds)], env, LABELS[system])
    colds = [1e3 * (result.pop("first_query_monotonic") - start)]
    for _ in range(args.cold_starts - 1):
        start = time.monotonic()
        line = measured([*cmd, "--rounds", "0"], env, f"{LABELS[system]} (cold start)")
        colds.append(1e3 * (line["first_query_monotonic"] - start))
    result["cold_start_ms"] = sorted(colds)[len(colds) // 2]
    result["check_file"] = str(check_file)
    return result


def table(results: dict, diffs: dict, cold_starts: int) -> list[str]:
    systems = list(results)
    head = [LABELS[s] for s in systems]
    ratio = "latebird" in results and "pylate" in results
    if ratio:
        head.append("speed, latebird f32 / PyLate")
    lines = ["| figure | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    # (key, label, format, True when larger is better; None: no ratio)
    rows = [
        ("docs_per_s", "documents/s", "{:.0f}", True),
        ("latency_p50_ms", "single-query latency p50 (ms)", "{:.2f}", False),
        ("latency_p99_ms", "single-query latency p99 (ms)", "{:.2f}", False),
        ("cold_start_ms", f"cold start (ms, median of {cold_starts})", "{:.0f}", False),
    ]
    for key, label, pattern, larger in rows:
        cells = [pattern.format(results[s][key]) for s in systems]
        if ratio:
            a, b = results["latebird"][key], results["pylate"][key]
            cells.append(f"{(a / b if larger else b / a):.2f}x")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label, pattern in [
        ("document", "max abs diff vs PyLate, documents", "{:.1e}"),
        ("query", "max abs diff vs PyLate, queries", "{:.1e}"),
        ("cosine", "least token cosine vs PyLate", "{:.6f}"),
    ]:
        cells = []
        for s in systems:
            if s not in diffs:
                cells.append("-")
            elif key == "cosine":
                cosine = min(diffs[s]["document_cosine"], diffs[s]["query_cosine"])
                cells.append(pattern.format(cosine))
            else:
                value = diffs[s][key]
                cells.append(value if isinstance(value, str) else pattern.format(value))
        cells += [""] if ratio else []
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N (or cpu, to try it out)")
    parser.add_argument("--documents", type=int, default=500, help="documents and queries")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the documents")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--check", type=int, default=64, help="texts compared with PyLate")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--latebird-python", default=sys.executable)
    parser.add_argument("--pylate-python", default=sys.executable)
    parser.add_argument("--cuda-lib", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", metavar="SYSTEM", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--check-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.system = args.worker
        worker(args)
        return
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if not (args.model / "modules.json").is_file():
        parser.error(f"{args.model} is not a PyLate model folder")
    if min(args.documents, args.rounds, args.latency_samples, args.cold_starts) < 1:
        parser.error("--documents, --rounds, --latency-samples and --cold-starts must be >= 1")
    # The CPU benchmark's texts and comparison (imported here: the measured processes do not
    # load the benchmark's own imports).
    sys.path.insert(0, str(SCRIPTS))
    from benchmark import load_texts, max_diff

    texts, source = load_texts(args.documents, args.documents)
    args.out.mkdir(parents=True, exist_ok=True)
    texts_file = args.out / "texts.json"
    texts_file.write_text(json.dumps(texts))
    results, failed = {}, []
    for system in systems:
        try:
            results[system] = run(system, args, texts_file)
        except RuntimeError as e:
            print(e, file=sys.stderr)
            failed.append(LABELS[system])
    diffs = {}
    if "pylate" in results:
        diffs = {s: max_diff(r, results["pylate"]) for s, r in results.items() if s != "pylate"}
    print(
        f"\n{args.model.name} on {args.device}, {len(texts['documents'])} documents and "
        f"{len(texts['queries'])} queries ({source}), batch size {args.batch_size}:\n"
    )
    if results:
        print("\n".join(table(results, diffs, args.cold_starts)))
    if failed:
        print(f"\nfailed (their errors are above): {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Side-by-side CPU benchmark: latebird, PyLate (PyTorch) and ONNX Runtime on the same models.

    python scripts/benchmark.py [--model DIR ...] [--threads 2] [--limit N] [--write BENCHMARKS.md]

(`bash scripts/bench.sh` sets up a virtualenv with everything and runs this on both models.)

For every model, each system runs in its own fresh process with the same texts and thread
count (RAYON/OMP/MKL_NUM_THREADS, torch.set_num_threads, ONNX Runtime's intra_op_num_threads;
inter-op threads 1): latebird through its Python API, PyLate on PyTorch in float32 with sdpa
attention, and ONNX Runtime on the same weights exported by scripts/export_onnx.py (backbone,
Dense layers and L2 normalisation; exported once and cached under target/onnx/, not timed),
with PyLate's tokenization redone torch-free in scripts/onnx_colbert.py. Texts:
../shared/data/abstracts.jsonl when present (titles as queries, abstracts as documents), else
generated texts of similar lengths.

Figures: documents/s and queries/s (batch 32, best of up to --rounds passes), single-query
latency p50/p99, cold start (from spawning the process to the first query's embedding, so
interpreter start-up and imports count), peak RSS, and the achieved GFLOP/s of document
encoding with its fraction of the machine's peak f32 FMA throughput (measured by
crates/core/examples/peak_flops.rs). The outputs of the first --check documents and queries
are compared with PyLate's. PyLate (and the exporter) must be importable by --pylate-python,
onnxruntime and tokenizers by --onnx-python, latebird by --latebird-python; the exporter runs
with --pylate-python and also needs onnx and onnxscript there.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
from onnx_colbert import PyLateTokenizer  # noqa: E402

ABSTRACTS = ROOT.parent / "shared" / "data" / "abstracts.jsonl"
BENCH_MODEL = ROOT / "target" / "bench-models" / "modernbert-base-random"
DEFAULT_MODELS = [ROOT / "tests" / "models" / "minilm-colbert", BENCH_MODEL]
OUT = ROOT / "target" / "bench"
SYSTEMS = (
    "latebird",
    "latebird-mkl",
    "latebird-bf16",
    "latebird-int8",
    "pylate",
    "pylate-bf16",
    "onnxruntime",
    "onnxruntime-int8",
)
# latebird's own systems beside float32, and the precision each runs in.
PRECISIONS = {"latebird-bf16": "bfloat16", "latebird-int8": "int8"}
LABELS = {
    "latebird": "latebird",
    "latebird-mkl": "latebird MKL",
    "latebird-bf16": "latebird bf16",
    "latebird-int8": "latebird int8",
    "pylate": "PyLate",
    "pylate-bf16": "PyLate bf16",
    "onnxruntime": "ONNX Runtime",
    "onnxruntime-int8": "ONNX Runtime int8",
}
# The peers each of latebird's lower precisions is compared with.
LOWER_PEERS = {
    "latebird-bf16": ("pylate", "onnxruntime", "pylate-bf16"),
    "latebird-int8": ("pylate", "onnxruntime", "onnxruntime-int8"),
}
RSS_MARGIN_MB = 100
FLOAT32_SYSTEMS = ("latebird", "latebird-mkl", "pylate", "onnxruntime")

# Runs inside the measured process; prints one JSON line of figures. Arguments: system, model
# folder, texts file, threads, ONNX file, output file for the checked embeddings, number of
# texts to check, maximum passes, time budget for the passes (s), latency samples.
WORKER = r"""
import json, os, resource, sys, time
system, model_dir, texts_file, threads, onnx_path, check_file = sys.argv[1:7]
threads, check, rounds, budget, samples = int(threads), int(sys.argv[7]), int(sys.argv[8]), float(sys.argv[9]), int(sys.argv[10])
texts = json.load(open(texts_file))
queries, documents = texts["queries"], texts["documents"]
if system.startswith("latebird"):
    import latebird
    precision = {"latebird-bf16": "bfloat16", "latebird-int8": "int8"}.get(system)
    model = latebird.ColBERT(model_dir, **({"precision": precision} if precision else {}))
    def encode(xs, is_query, batch_size=32):
        return model.encode(xs, is_query=is_query, batch_size=batch_size, show_progress_bar=False)
elif system in ("pylate", "pylate-bf16"):
    import torch
    torch.set_num_threads(threads)
    from pylate import models
    dtype = torch.bfloat16 if system == "pylate-bf16" else torch.float32
    model = models.ColBERT(model_dir, device="cpu",
                           model_kwargs={"attn_implementation": "sdpa", "dtype": dtype})
    def encode(xs, is_query, batch_size=32):
        return model.encode(xs, is_query=is_query, batch_size=batch_size, show_progress_bar=False)
else:
    sys.path.insert(0, os.environ["LATEBIRD_SCRIPTS"])
    from onnx_colbert import OnnxColBERT
    model = OnnxColBERT(model_dir, onnx_path, threads)
    encode = model.encode
encode([queries[0]], True)
first_query = time.monotonic()
if rounds == 0:  # a cold-start sample only
    print(json.dumps({"first_query_monotonic": first_query}))
    sys.exit(0)
def best_pass(xs, is_query):
    times, spent = [], 0.0
    while len(times) < rounds and (not times or spent < budget):
        t = time.perf_counter(); out = encode(xs, is_query); dt = time.perf_counter() - t
        times.append(dt); spent += dt
    return min(times), len(times), out
encode(documents[:8], False)
doc_s, doc_rounds, docs_out = best_pass(documents, False)
query_s, query_rounds, queries_out = best_pass(queries, True)
lat = []
for i in range(samples):
    q = [queries[i % len(queries)]]
    t = time.perf_counter(); encode(q, True); lat.append(time.perf_counter() - t)
lat.sort()
import numpy as np
np.savez(check_file, **{f"document.{i}": np.asarray(x, dtype=np.float32) for i, x in enumerate(docs_out[:check])},
         **{f"query.{i}": np.asarray(x, dtype=np.float32) for i, x in enumerate(queries_out[:check])})
print(json.dumps({
    "build_features": latebird.build_features if system.startswith("latebird") else None,
    "first_query_monotonic": first_query, "doc_s": doc_s, "doc_rounds": doc_rounds,
    "docs_per_s": len(documents) / doc_s, "queries_per_s": len(queries) / query_s, "query_rounds": query_rounds,
    "latency_p50_ms": 1e3 * lat[len(lat) // 2], "latency_p99_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
    "document_rows": sum(len(o) for o in docs_out), "torch_imported": "torch" in sys.modules,
}))
"""

# Long documents: the same, for documents truncated at a given length (document_length).
# Arguments: system, model folder, texts file, threads, length, output file for the first
# document's embedding, maximum passes, time budget (s), batch size.
LONG_WORKER = r"""
import json, sys, time
system, model_dir, texts_file, threads, length, check_file = sys.argv[1:7]
threads, length, rounds, budget, batch = int(threads), int(length), int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
documents = json.load(open(texts_file))
if system == "latebird":
    import latebird
    model = latebird.ColBERT(model_dir, document_length=length)
    kwargs = {"show_progress_bar": False}
else:
    import torch
    torch.set_num_threads(threads)
    from pylate import models
    model = models.ColBERT(model_dir, device="cpu", document_length=length,
                           model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32})
    kwargs = {"show_progress_bar": False}
times, spent = [], 0.0
while len(times) < rounds and (not times or spent < budget):
    t = time.perf_counter()
    out = model.encode(documents, is_query=False, batch_size=batch, **kwargs)
    dt = time.perf_counter() - t
    times.append(dt); spent += dt
import numpy as np
np.save(check_file, np.asarray(out[0], dtype=np.float32))
print(json.dumps({"doc_s": min(times), "rounds": len(times), "docs_per_s": len(documents) / min(times),
                  "tokens": [len(o) for o in out]}))
"""

VERSIONS = r"""
import json, platform
from importlib import metadata
out = {"python": platform.python_version()}
for name in ("latebird", "pylate", "torch", "transformers", "sentence-transformers", "onnxruntime", "onnx", "tokenizers"):
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------
# Texts, model shapes and FLOPs
# ---------------------------------------------------------------------------


def load_texts(n: int, limit: int | None) -> tuple[dict[str, list[str]], str]:
    if ABSTRACTS.is_file():
        rows = [json.loads(line) for line in ABSTRACTS.read_text().splitlines() if line.strip()]
        rows = rows[:limit] if limit else rows
        texts = {"queries": [r["title"] for r in rows], "documents": [r["abstract"] for r in rows]}
        return texts, f"{ABSTRACTS.name} ({len(rows)} titles / abstracts)"
    n = min(n, limit) if limit else n
    rng = random.Random(0)
    words = "model token retrieval vector late interaction encoder score query document".split()
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(120, 220))) for _ in range(n)]
    queries = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) for _ in range(n)]
    return {"queries": queries, "documents": docs}, f"generated ({n} texts)"


class Shape:
    """What the FLOP count needs from a model folder's config files."""

    def __init__(self, folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        self.kind = cfg["model_type"]
        self.layers = cfg["num_hidden_layers"]
        self.hidden = cfg["hidden_size"]
        self.inter = cfg["intermediate_size"]
        h, i = self.hidden, self.inter
        if self.kind == "bert":
            self.layer_params = 3 * h * h + h * h + h * i + i * h  # QKV, output, FFN in, FFN out
            self.windows = [None] * self.layers
        elif self.kind == "modernbert":
            self.layer_params = 3 * h * h + h * h + h * 2 * i + i * h  # Wqkv, Wo, Wi (GeGLU), Wo
            every = cfg.get("global_attn_every_n_layers", 3)
            types = cfg.get("layer_types") or [
                "full_attention" if l % every == 0 else "sliding_attention"
                for l in range(self.layers)
            ]
            local = cfg.get("local_attention", 128)
            self.windows = [None if t == "full_attention" else local // 2 for t in types]
        else:
            raise SystemExit(f"{folder}: no FLOP formula for model_type {self.kind!r}")
        self.dense_params = 0
        for module in json.loads((folder / "modules.json").read_text()):
            if module["type"].endswith("Dense"):
                dense = json.loads((folder / module["path"] / "config.json").read_text())
                fan_in, fan_out = dense["in_features"], dense["out_features"]
                self.dense_params += fan_in * fan_out
                if dense.get("use_residual") and fan_in != fan_out:
                    self.dense_params += fan_in * fan_out  # the residual projection
        self.weight_bytes = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
        self.max_positions = cfg.get("max_position_embeddings", 512)

    def flops(self, n: int) -> int:
        """Multiply-add FLOPs of one unpadded sequence of n tokens (elementwise ops ignored)."""
        total = 2 * n * self.layer_params * self.layers + 2 * n * self.dense_params
        pos = np.arange(n)
        for half in self.windows:
            if half is None:
                keys = n * n
            else:  # keys j with |i - j| <= half, counted exactly near both ends
                keys = int((np.minimum(n - 1, pos + half) - np.maximum(0, pos - half) + 1).sum())
            total += 2 * 2 * keys * self.hidden  # Q K^T and P V
        return total

    def describe(self) -> str:
        if self.kind == "bert":
            attn = "global attention"
        else:
            n_local = sum(w is not None for w in self.windows)
            half = next((w for w in self.windows if w is not None), 0)
            attn = f"{self.layers - n_local} global / {n_local} local (|i-j| <= {half}) layers"
        return (
            f"{self.kind}, {self.layers} layers, hidden {self.hidden}, intermediate {self.inter}, "
            f"{attn}; weights {self.weight_bytes / 1e6:.0f} MB"
        )


FLOP_NOTE = (
    "GFLOP/s = FLOPs of the documents / best time of one pass over them; FLOPs from the model "
    "shapes and every document's real (unpadded) token count, the same number for all systems: "
    "per layer the linear layers (2·n·in·out each), attention QKᵀ and PV (2·2·n·keys·hidden, keys "
    "= n on global layers, the keys inside the sliding window on ModernBERT local layers), plus "
    "the Dense head; embeddings, norms, activations, softmax and other elementwise ops ignored."
)


# ---------------------------------------------------------------------------
# Machine, peak and versions
# ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info = {"cpu": platform.processor() or platform.machine(), "isa": "", "cores": ""}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text()
        if m := re.search(r"^model name\s*:\s*(.+)$", text, re.M):
            info["cpu"] = m.group(1).strip()
        flags = set((re.search(r"^flags\s*:\s*(.+)$", text, re.M) or ["", ""])[1].split())
        wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"]
        info["isa"] = ", ".join(f for f in wanted if f in flags)
        if "hypervisor" in flags:
            info["isa"] += " (virtualised)"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cores"] = f"{usable} usable of {os.cpu_count()} logical CPUs"
    info["os"] = platform.platform()
    return info


def peak_flops(threads: int) -> tuple[float | None, str]:
    """Runs crates/core/examples/peak_flops.rs; returns the best GFLOP/s and its output."""
    cmd = ["cargo", "run", "--quiet", "--release", "-p", "latebird", "--example", "peak_flops"]
    cmd += ["--", "--threads", str(threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"peak_flops failed, no peak figure:\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None, ""
    m = re.search(r"^best: ([0-9.]+) GFLOP/s", proc.stdout, re.M)
    return (float(m.group(1)) if m else None), proc.stdout.strip()


def versions(python: str) -> dict[str, str]:
    proc = subprocess.run([python, "-c", VERSIONS], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def git_revision() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    rev = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{rev} (uncommitted changes)" if rev and dirty else rev


# ---------------------------------------------------------------------------
# Running the systems
# ---------------------------------------------------------------------------


def thread_env(threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "RAYON_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "LATEBIRD_SCRIPTS": str(SCRIPTS),
    }


def measured(cmd: list[str], threads: int, what: str, path: str | None = None) -> dict:
    """Runs one measured process with the benchmark's thread settings (and `path` first on
    PYTHONPATH); returns the JSON object its last output line holds (a failure stops the
    benchmark, naming `what`)."""
    env = thread_env(threads)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def onnx_file(python: str, model: Path, threads: int) -> Path:
    """The exported model, made once per model folder and exporter version (not timed)."""
    key = hashlib.sha256((SCRIPTS / "export_onnx.py").read_bytes())
    for f in sorted(p for p in model.rglob("*") if p.is_file()):
        st = f.stat()
        key.update(f"{f.relative_to(model)}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = ROOT / "target" / "onnx" / f"{model.name}-{key.hexdigest()[:12]}.onnx"
    if not out.is_file():
        print(f"exporting {model.name} to ONNX (once, not timed) ...", file=sys.stderr)
        cmd = [python, str(SCRIPTS / "export_onnx.py"), str(model), str(out), "--check"]
        proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"ONNX export failed:\n{proc.stderr[-3000:]}")
        for line in proc.stderr.splitlines():
            if line.startswith(("wrote", "max abs diff", "no check")):
                print("  " + line, file=sys.stderr)
        for stale in out.parent.glob(f"{model.name}-*.onnx"):
            if stale != out:
                stale.unlink()  # exports of older model files or an older exporter
    return out


def onnx_int8_file(python: str, onnx: Path) -> Path:
    """ONNX Runtime's own dynamic int8 quantization of the exported model (int8 weights per
    tensor, activations quantized at run time), made once (not timed)."""
    out = onnx.with_name(onnx.stem + "-int8.onnx")
    if not out.is_file():
        print(
            f"quantizing {onnx.name} with quantize_dynamic (once, not timed) ...", file=sys.stderr
        )
        code = (
            "import sys\n"
            "from onnxruntime.quantization import QuantType, quantize_dynamic\n"
            "quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8)\n"
        )
        proc = subprocess.run(
            [python, "-c", code, str(onnx), str(out)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"ONNX int8 quantization failed:\n{proc.stderr[-3000:]}")
    return out


def interpreters_of(args) -> dict[str, str]:
    """The Python each system runs in."""
    by_kind = {
        "latebird": args.latebird_python,
        "pylate": args.pylate_python,
        "onnxruntime": args.onnx_python,
    }
    return {s: by_kind[s.split("-")[0]] for s in SYSTEMS}


def run(python: str, system: str, model: Path, texts: Path, args, onnx: Path | None) -> dict:
    check_file = OUT / model.name / f"{system}.npz"
    check_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-c", WORKER, system, str(model), str(texts), str(args.threads)]
    cmd += [str(onnx or ""), str(check_file), str(args.check), str(args.rounds)]
    cmd += [str(args.budget), str(args.latency_samples)]
    print(f"running {LABELS[system]} on {model.name} ...", file=sys.stderr)
    # The MKL build is another copy of the package, found first on PYTHONPATH.
    path = args.latebird_mkl_site if system == "latebird-mkl" else None
    start = time.monotonic()
    result = measured(cmd, args.threads, f"{system} on {model}", path)
    features = result.pop("build_features", None)
    if system == "latebird-mkl" and "mkl" not in (features or []):
        raise SystemExit(f"latebird-mkl: {args.latebird_mkl_site} holds a build without MKL")
    colds = [1e3 * (result.pop("first_query_monotonic") - start)]
    # More fresh processes that stop at the first query: the median is the cold start.
    sample = [*cmd[:10], "0", *cmd[11:]]  # rounds = 0
    for _ in range(args.cold_starts - 1):
        start = time.monotonic()
        line = measured(sample, args.threads, f"{system} on {model}", path)
        colds.append(1e3 * (line["first_query_monotonic"] - start))
    result["cold_start_ms"] = sorted(colds)[len(colds) // 2]
    result["check_file"] = str(check_file)
    return result


def max_diff(system: dict, reference: dict) -> dict[str, float | str]:
    """Largest |x - PyLate| over the checked documents and queries (or why not)."""
    got, want = np.load(system["check_file"]), np.load(reference["check_file"])
    out: dict[str, float | str] = {}
    for kind in ("document", "query"):
        names = sorted((k for k in want.files if k.startswith(kind + ".")), key=len)
        worst: float | str = 0.0
        cosine = 1.0
        for name in names:
            if name not in got.files or got[name].shape != want[name].shape:
                shape = got[name].shape if name in got.files else None
                worst = f"{name}: shape {shape} vs PyLate's {want[name].shape}"
                break
            if want[name].size:
                worst = max(worst, float(np.abs(got[name] - want[name]).max()))
                # Rows are L2-normalised: row-wise dot products are cosines.
                cosine = min(cosine, float(np.sum(got[name] * want[name], axis=1).min()))
        out[kind] = worst
        out[kind + "_cosine"] = cosine
    return out


def first_query_binary() -> Path | None:
    """Builds crates/core/examples/first_query.rs (not timed); returns its path."""
    cmd = ["cargo", "build", "--release", "-p", "latebird", "--example", "first_query"]
    cmd += ["--message-format=json-render-diagnostics"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"first_query failed to build:\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if message.get("target", {}).get("name") == "first_query" and message.get("executable"):
            return Path(message["executable"])
    return None


def rust_cold_start(binary: Path, model: Path, precision: str | None, threads: int) -> dict:
    """Median over 5 fresh processes of spawn -> first query embedding, with the load and
    query times measured inside the process."""
    runs = []
    for _ in range(5):
        cmd = [str(binary), str(model)] + ([precision] if precision else [])
        start = time.time()
        line = measured(cmd, threads, f"first_query on {model}")
        runs.append(((line["first_query_unix"] - start) * 1e3, line["load_ms"], line["query_ms"]))
    runs.sort()
    total, load, query = runs[len(runs) // 2]
    return {"rust_cold_start_ms": total, "rust_load_ms": load, "rust_query_ms": query}


def long_texts(texts: dict[str, list[str]], count: int) -> list[str]:
    """`count` long documents: all the documents joined, each starting at a different one
    (every one is longer than the longest length measured, so all are truncated alike)."""
    docs = texts["documents"]
    step = max(1, len(docs) // max(count, 1))
    return [" ".join(docs[i * step :] + docs[: i * step]) for i in range(count)]


def long_documents(pythons: dict, model: Path, texts: dict, args) -> list[dict]:
    """latebird and PyLate (float32) on documents truncated at each --long length."""
    rows = []
    for length in args.long:
        count = max(1, 8192 // length)  # about as many tokens per pass at every length
        docs = long_texts(texts, count)
        texts_file = OUT / model.name / f"long-{length}.json"
        texts_file.parent.mkdir(parents=True, exist_ok=True)
        texts_file.write_text(json.dumps(docs))
        row: dict = {"length": length, "documents": count}
        for system in ("latebird", "pylate"):
            check_file = OUT / model.name / f"long-{length}-{system}.npy"
            cmd = [pythons[system], "-c", LONG_WORKER, system, str(model), str(texts_file)]
            cmd += [str(args.threads), str(length), str(check_file), str(args.rounds)]
            cmd += [str(args.budget), str(min(count, 4))]
            print(
                f"running {LABELS[system]} on {count} documents of {length} tokens ...",
                file=sys.stderr,
            )
            row[system] = measured(cmd, args.threads, f"{system} on long documents")
            row[system]["check_file"] = str(check_file)
        got, want = (np.load(row[s]["check_file"]) for s in ("latebird", "pylate"))
        row["max_diff"] = (
            float(np.abs(got - want).max())
            if got.shape == want.shape
            else f"shape {got.shape} vs PyLate's {want.shape}"
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

ROWS = [
    ("docs_per_s", "documents/s (batch 32)", "{:.1f}"),
    ("queries_per_s", "queries/s (batch 32)", "{:.1f}"),
    ("latency_p50_ms", "single-query latency p50 (ms)", "{:.2f}"),
    ("latency_p99_ms", "single-query latency p99 (ms)", "{:.2f}"),
    ("cold_start_ms", "cold start to first query (ms)", "{:.0f}"),
    ("rust_cold_start_ms", "cold start, Rust binary, no Python (ms)", "{:.0f}"),
    ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"),
    ("doc_gflops", "document GFLOP/s", "{:.1f}"),
    ("doc_peak_fraction", "document GFLOP/s / peak", "{:.1%}"),
]


def fmt(value, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def ratio(results: dict, key: str, other: str, system: str = "latebird") -> str:
    a, b = results.get(system, {}).get(key), results.get(other, {}).get(key)
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def model_table(results: dict) -> list[str]:
    systems = [s for s in SYSTEMS if s in results]
    peers = [s for s in ("pylate", "onnxruntime") if s in results and "latebird" in results]
    mkl = "latebird-mkl" in results and "latebird" in results
    lower = [s for s in PRECISIONS if s in results and "latebird" in results]
    lower_peers = [(s, p) for s in lower for p in LOWER_PEERS[s] if p in results]
    head = [LABELS[s] for s in systems] + [f"latebird / {LABELS[s]}" for s in peers]
    head += ["MKL / default build"] if mkl else []
    head += [f"{PRECISIONS[s]} / float32" for s in lower]
    head += [f"{PRECISIONS[s]} / {LABELS[p]}" for s, p in lower_peers]
    lines = ["| figure | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for key, label, pattern in ROWS:
        cells = [fmt(results[s].get(key), pattern) for s in systems]
        cells += [ratio(results, key, s) for s in peers]
        cells += [ratio(results, key, "latebird", "latebird-mkl")] if mkl else []
        cells += [ratio(results, key, "latebird", s) for s in lower]
        cells += [ratio(results, key, p, s) for s, p in lower_peers]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def diff_lines(diffs: dict, check: int) -> list[str]:
    out = []
    plural = {"document": "documents", "query": "queries"}
    for system, d in diffs.items():
        parts = [
            f"{plural[kind]} {v:.1e}" if isinstance(v, float) else f"{plural[kind]} MISMATCH ({v})"
            for kind, v in d.items()
            if kind in plural
        ]
        line = f"max |{LABELS[system]} - PyLate| over the first {check} texts: " + ", ".join(parts)
        if system in PRECISIONS or system in ("onnxruntime-int8", "pylate-bf16"):
            cosines = [f"{plural[k]} {d[k + '_cosine']:.4f}" for k in plural if k + "_cosine" in d]
            line += "; smallest token cosine with PyLate: " + ", ".join(cosines)
        out.append(line)
    return out


def targets(all_results: dict, shapes: dict, long: dict) -> list[tuple[str, str, str, str]]:
    """(target, model, measured, met / not met) rows."""
    rows = []

    def add(name, model, value, goal, passed, fmt_value="{:.2f}x"):
        if value is None:
            rows.append((name, model, "not measured", "not measured"))
        else:
            shown = fmt_value.format(value) + f" (target {goal})"
            rows.append((name, model, shown, "met" if passed(value) else "not met"))

    def rel(results, key, other, system="latebird"):
        a, b = results.get(system, {}).get(key), results.get(other, {}).get(key)
        return None if a is None or not b else a / b

    for model, results in all_results.items():
        shape = shapes[model]
        add(
            "documents/s >= 1.5x PyLate",
            model,
            rel(results, "docs_per_s", "pylate"),
            ">= 1.5x",
            lambda v: v >= 1.5,
        )
        add(
            "documents/s ahead of ONNX Runtime",
            model,
            rel(results, "docs_per_s", "onnxruntime"),
            "> 1x",
            lambda v: v > 1.0,
        )
        add(
            "p50 latency <= 1/3 of PyLate's",
            model,
            rel(results, "latency_p50_ms", "pylate"),
            "<= 0.33x",
            lambda v: v <= 1 / 3,
        )
        add(
            "cold start <= 1/20 of PyLate's",
            model,
            rel(results, "cold_start_ms", "pylate"),
            "<= 0.05x",
            lambda v: v <= 0.05,
            "{:.3f}x",
        )
        lb = results.get("latebird", {})
        if shape.kind == "bert":
            add(
                "cold start < 150 ms",
                model,
                lb.get("cold_start_ms"),
                "< 150 ms",
                lambda v: v < 150,
                "{:.0f} ms",
            )
        limit = shape.weight_bytes / 1e6 + RSS_MARGIN_MB
        rss = lb.get("peak_rss_mb")
        add(
            f"peak RSS <= weights + {RSS_MARGIN_MB} MB",
            model,
            rss,
            f"<= {limit:.0f} MB",
            lambda v, limit=limit: v <= limit,
            "{:.0f} MB",
        )
        add(
            "document GFLOP/s >= 70% of peak",
            model,
            lb.get("doc_peak_fraction"),
            ">= 70%",
            lambda v: v >= 0.7,
            "{:.1%}",
        )
        # Speed beyond float32, and the float32 path's latency tail and cold start.
        for system, other, name, goal, passed in (
            (
                "latebird-int8",
                "latebird",
                "int8 documents/s >= 2.5x float32",
                ">= 2.5x",
                lambda v: v >= 2.5,
            ),
            (
                "latebird-int8",
                "onnxruntime-int8",
                "int8 documents/s ahead of ONNX Runtime int8",
                "> 1x",
                lambda v: v > 1.0,
            ),
            (
                "latebird-bf16",
                "latebird",
                "bfloat16 documents/s >= 3x float32",
                ">= 3x",
                lambda v: v >= 3.0,
            ),
            (
                "latebird-bf16",
                "pylate-bf16",
                "bfloat16 documents/s ahead of PyLate bf16",
                "> 1x",
                lambda v: v > 1.0,
            ),
        ):
            if system in results:
                add(name, model, rel(results, "docs_per_s", other, system), goal, passed)
        if "latebird-int8" in results:
            add(
                "int8 p50 latency <= 1/3 of float32's",
                model,
                rel(results, "latency_p50_ms", "latebird", "latebird-int8"),
                "<= 0.33x",
                lambda v: v <= 1 / 3,
            )
        p50, p99 = lb.get("latency_p50_ms"), lb.get("latency_p99_ms")
        add(
            "p99 latency <= 1.3x p50",
            model,
            p99 / p50 if p50 and p99 else None,
            "<= 1.3x",
            lambda v: v <= 1.3,
        )
        budget = {"bert": 120, "modernbert": 250}.get(shape.kind)
        if budget:
            for key, how in (("cold_start_ms", "Python"), ("rust_cold_start_ms", "Rust binary")):
                add(
                    f"cold start ({how}) <= {budget} ms",
                    model,
                    lb.get(key),
                    f"<= {budget} ms",
                    lambda v, budget=budget: v <= budget,
                    "{:.0f} ms",
                )
        for row in long.get(model, []):
            add(
                f"documents of {row['length']} tokens >= 1.5x PyLate",
                model,
                row["latebird"]["docs_per_s"] / row["pylate"]["docs_per_s"],
                ">= 1.5x",
                lambda v: v >= 1.5,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="PyLate model folder (repeatable; default: the BERT test model and, when built, "
        "target/bench-models/modernbert-base-random)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--systems",
        default=None,
        help="comma-separated, from: " + ", ".join(SYSTEMS) + " (default: all; latebird-mkl "
        "when --latebird-mkl-site is given)",
    )
    parser.add_argument(
        "--latebird-mkl-site",
        default=None,
        help="a folder holding latebird built with --features mkl (pip install --target), "
        "measured as latebird-mkl",
    )
    parser.add_argument("--latebird-python", default=sys.executable)
    parser.add_argument("--pylate-python", default=sys.executable)
    parser.add_argument(
        "--onnx-python", default=None, help="runs ONNX Runtime (default: --pylate-python)"
    )
    parser.add_argument("--texts", type=int, default=88, help="generated texts when no data file")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    parser.add_argument("--rounds", type=int, default=3, help="most timed passes over the texts")
    parser.add_argument("--budget", type=float, default=20.0, help="no new pass after this (s)")
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="fresh processes whose median is the cold start"
    )
    parser.add_argument("--check", type=int, default=8, help="texts compared with PyLate")
    parser.add_argument("--peak-gflops", type=float, default=None, help="skip measuring it")
    parser.add_argument("--write", type=Path, default=None, help="write a Markdown report")
    parser.add_argument(
        "--long",
        default="2048,8192",
        help="document lengths (tokens) for the long-document runs of latebird and PyLate, on "
        "models whose positions reach them; '' skips them",
    )
    args = parser.parse_args()
    try:
        args.long = [int(v) for v in args.long.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--long {args.long!r}: expected comma-separated token counts")
    args.onnx_python = args.onnx_python or args.pylate_python
    if args.systems is None:
        args.systems = ",".join(s for s in SYSTEMS if s != "latebird-mkl" or args.latebird_mkl_site)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "latebird-mkl" in systems and not args.latebird_mkl_site:
        parser.error("latebird-mkl needs --latebird-mkl-site (bash scripts/bench.sh builds it)")
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    models = args.model or [m for m in DEFAULT_MODELS if m.is_dir()]
    if not args.model and not BENCH_MODEL.is_dir():
        print(f"note: {BENCH_MODEL} not built (scripts/build_bench_models.py)", file=sys.stderr)
    for m in models:
        if not (m / "config.json").is_file():
            parser.error(f"{m} is not a model folder")
    pythons = interpreters_of(args)

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(
            f"note: load average {load_before:.2f} before starting: figures may be noisy",
            file=sys.stderr,
        )
    texts, source = load_texts(args.texts, args.limit)
    OUT.mkdir(parents=True, exist_ok=True)
    texts_file = OUT / "texts.json"
    texts_file.write_text(json.dumps(texts))

    if args.peak_gflops is not None:
        peak, peak_text = args.peak_gflops, f"given with --peak-gflops: {args.peak_gflops}"
    else:
        print("measuring peak f32 FMA throughput (peak_flops example) ...", file=sys.stderr)
        peak, peak_text = peak_flops(args.threads)

    cold_binary = first_query_binary() if set(systems) & {"latebird", *PRECISIONS} else None
    all_results, shapes, diffs, notes, long = {}, {}, {}, {}, {}
    for model in models:
        name = model.name
        shape = shapes[name] = Shape(model)
        tokenizer = PyLateTokenizer(model)
        lengths = [len(ids) for ids, _ in tokenizer.ids(texts["documents"], is_query=False)]
        doc_flops = sum(shape.flops(n) for n in lengths)
        wants_onnx = {"onnxruntime", "onnxruntime-int8"} & set(systems)
        onnx = onnx_file(pythons["pylate"], model, args.threads) if wants_onnx else None
        onnx_int8 = (
            onnx_int8_file(pythons["pylate"], onnx)
            if onnx and "onnxruntime-int8" in systems
            else None
        )
        results = {}
        for system in systems:
            graph = onnx_int8 if system == "onnxruntime-int8" else onnx
            r = run(pythons[system], system, model, texts_file, args, graph)
            r["doc_gflops"] = doc_flops / r["doc_s"] / 1e9
            r["doc_peak_fraction"] = r["doc_gflops"] / peak if peak else None
            if cold_binary and system.startswith("latebird") and system != "latebird-mkl":
                r.update(rust_cold_start(cold_binary, model, PRECISIONS.get(system), args.threads))
            results[system] = r
        all_results[name] = results
        lengths_here = [n for n in args.long if n <= shape.max_positions]
        if lengths_here and {"latebird", "pylate"} <= set(systems):
            long[name] = long_documents(
                pythons, model, texts, argparse.Namespace(**{**vars(args), "long": lengths_here})
            )
        if "pylate" in results:
            diffs[name] = {
                s: max_diff(results[s], results["pylate"]) for s in results if s != "pylate"
            }
        # The peak is float32's: int8 and bfloat16 may pass it.
        over = [
            LABELS[s]
            for s, r in results.items()
            if s in FLOAT32_SYSTEMS and (r["doc_peak_fraction"] or 0) > 1
        ]
        torch_used = [
            LABELS[s]
            for s in ("latebird", *PRECISIONS, "onnxruntime", "onnxruntime-int8")
            if results.get(s, {}).get("torch_imported")
        ]
        notes[name] = {
            "shape": shape.describe(),
            "tokens": f"{len(lengths)} documents, {sum(lengths)} tokens "
            f"(mean {sum(lengths) / max(len(lengths), 1):.0f}), {doc_flops / 1e9:.1f} GFLOP",
            "warnings": [f"{', '.join(torch_used)} imported torch"] if torch_used else [],
        }
        if over:
            notes[name]["warnings"].append(
                f"{', '.join(over)} beat the measured peak: the peak run was disturbed (busy "
                "machine?); rerun when idle or give --peak-gflops"
            )

    load = (load_before, os.getloadavg()[0])
    # The raw figures first, so that a failure while rendering loses no run.
    raw = {"results": all_results, "diffs": diffs, "long": long, "load": load}
    (OUT / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    report = render(args, source, peak, peak_text, all_results, shapes, diffs, notes, load, long)
    print(report)
    if args.write:
        args.write.write_text(report + kept_section(args.write))
        print(f"wrote {args.write}", file=sys.stderr)


# The WebAssembly section that tests/js/bench.mjs writes into the same file, between these
# markers: a rewrite of the file keeps it.
BROWSER_START = "<!-- browser-benchmark:start -->"
BROWSER_END = "<!-- browser-benchmark:end -->"


def kept_section(path: Path) -> str:
    """The browser section of the existing report at `path` ("" when there is none)."""
    old = path.read_text() if path.exists() else ""
    start, end = old.find(BROWSER_START), old.find(BROWSER_END)
    if start < 0 or end < start:
        return ""
    return "\n" + old[start : end + len(BROWSER_END)] + "\n"


def long_table(rows: list[dict]) -> list[str]:
    lines = [
        "| document length (tokens) | documents | latebird documents/s | PyLate documents/s "
        "| latebird / PyLate | max \\|latebird - PyLate\\| (first document) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lb, pl, diff = row["latebird"], row["pylate"], row["max_diff"]
        shown = f"{diff:.1e}" if isinstance(diff, float) else f"MISMATCH ({diff})"
        lines.append(
            f"| {row['length']} | {row['documents']} | {lb['docs_per_s']:.3f} | "
            f"{pl['docs_per_s']:.3f} | {lb['docs_per_s'] / pl['docs_per_s']:.2f}x | {shown} |"
        )
    return lines


def render(args, source, peak, peak_text, all_results, shapes, diffs, notes, load, long) -> str:
    info = machine()
    vers, pythons = {}, {}
    interpreters = interpreters_of(args)
    for system in dict.fromkeys(s.strip() for s in args.systems.split(",") if s.strip()):
        found = versions(interpreters[system])
        pythons[LABELS[system]] = found.pop("python")
        for k, v in found.items():
            vers.setdefault(k, v)
    if len(set(pythons.values())) == 1:
        vers = {"python": next(iter(pythons.values())), **vers}
    else:
        vers = {**{f"python ({k})": v for k, v in pythons.items()}, **vers}
    command = os.environ.get("LATEBIRD_BENCH_COMMAND") or "python " + shlex.join(
        [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]
    )
    peak_line = (
        f"{peak:.1f} GFLOP/s f32 with {args.threads} threads (best ISA of the peak_flops example: "
        "AVX-512F / AVX2+FMA fused multiply-adds on independent accumulators)"
        if peak
        else "not measured"
    )
    out = [
        "# Benchmarks",
        "",
        "latebird against PyLate (PyTorch) and ONNX Runtime on CPU, float32 (and latebird "
        "in bfloat16 and int8, PyLate in bfloat16, ONNX Runtime in its dynamic int8), "
        f"{args.threads} threads for every system, each system in a fresh process.",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {info['cpu']}; {info['cores']}; {info['os']}",
        f"- ISA: {info['isa']}",
        f"- peak: {peak_line}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- latebird revision: {git_revision() or 'unknown'}",
        f"- load average (1 min) before / after the run: {load[0]:.2f} / {load[1]:.2f}"
        + (
            " (the machine was busy in the minute before: figures may be noisy)"
            if load[0] > 0.5
            else ""
        ),
        f"- texts: {source}; documents/s and queries/s are the best of up to {args.rounds} "
        f"passes (no new pass after {args.budget:.0f} s), latency over {args.latency_samples} "
        "single queries",
        "- cold start: from spawning the process to the first query's embedding "
        f"(interpreter start, imports, model load included), median of {args.cold_starts} "
        "processes; the Rust-binary row is the same for crates/core/examples/first_query.rs "
        "(median of 5 processes), without Python",
        "",
        "```",
        command,
        "```",
    ]
    if peak_text and not peak_text.startswith("given"):
        out += ["", "Peak measurement:", "", "```", peak_text, "```"]
    for name, results in all_results.items():
        out += ["", f"## {name}", "", f"{notes[name]['shape']}; {notes[name]['tokens']}.", ""]
        out += model_table(results)
        if name in diffs:
            out += [""] + [f"- {line}" for line in diff_lines(diffs[name], args.check)]
        out += [f"- WARNING: {w}" for w in notes[name]["warnings"]]
        if long.get(name):
            out += ["", f"### {name}: long documents (float32)", ""]
            out += [
                "The documents are all the abstracts joined (each starting at a different one), "
                "truncated at `document_length`; best of the passes, batches of up to 4.",
                "",
            ]
            out += long_table(long[name])
    out += ["", FLOP_NOTE, "", "## Targets", ""]
    out += ["| target | model | measured | status |", "|---|---|---|---|"]
    out += [f"| {t} | {m} | {v} | {s} |" for t, m, v, s in targets(all_results, shapes, long)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()

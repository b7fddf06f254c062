#!/usr/bin/env python3
"""Build the benchmark's ModernBERT model: base-sized, random weights, BERT WordPiece tokenizer.

    python scripts/build_bench_models.py [--out target/bench-models] [--force]

writes ``modernbert-base-random/``, a PyLate folder shaped like answerdotai/ModernBERT-base
(22 layers, hidden 768, GeGLU MLP with intermediate 1152, 12 heads, 128-token local window,
a global layer every 3rd layer, RoPE bases 160000 global / 10000 local, no biases) with a
bias-free 768->128 Dense layer and the fixtures' PyLate settings (query length 32, document
length 180, punctuation skiplist). The tokenizer is the BERT test model's (WordPiece, with
PyLate's ``[Q] ``/``[D] `` tokens), so token counts are those of a real vocabulary; the
config's special-token ids and vocabulary size match it. The config is in the transformers 5
dialect (``layer_types``, ``rope_parameters``), which latebird reads too.

Needs numpy and the BERT test model (``python scripts/build_test_models.py`` first). The
weights are deterministic (the same counter-based generator as build_test_models.py, one
uniform draw per value, scaled to the wanted standard deviation) and stored as float32, so
the folder is about 0.5 GB; it is not committed. A stamp file records the hash of the two
builder scripts: an up-to-date folder is left alone unless --force is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from build_test_models import (
    IDENTITY,
    Writer,
    _seed_of,
    _splitmix64,
    colbert_settings,
    dense_config,
    json_bytes,
    modules_json,
    safetensors_bytes,
)

REPO = Path(__file__).resolve().parent.parent
NAME = "modernbert-base-random"
TOKENIZER_FROM = REPO / "tests" / "models" / "minilm-colbert"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

HIDDEN = 768
INTER = 1152
LAYERS = 22
HEADS = 12
LOCAL = 128
GLOBAL_EVERY = 3
DENSE_OUT = 128


def uniform(name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
    """float32 values uniform on mean +- std*sqrt(3) (so with standard deviation `std`)."""
    n = int(np.prod(shape))
    raw = _splitmix64(_seed_of(name), n)
    u = (raw >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)
    return ((2.0 * u - 1.0) * (std * 3.0**0.5) + mean).astype(np.float32).reshape(shape)


def weights(vocab: int) -> dict[str, np.ndarray]:
    pre = "bench-modernbert/"

    def linear(name: str, out_f: int, in_f: int, gain: float = 1.0) -> np.ndarray:
        return uniform(pre + name, (out_f, in_f), gain * in_f**-0.5)

    def norm(name: str) -> np.ndarray:
        return uniform(pre + name, (HIDDEN,), 0.1, mean=1.0)

    w = {
        "embeddings.tok_embeddings.weight": uniform(pre + "tok_embeddings", (vocab, HIDDEN), 0.5),
        "embeddings.norm.weight": norm("embeddings.norm"),
        "final_norm.weight": norm("final_norm"),
    }
    for l in range(LAYERS):
        p = f"layers.{l}."
        if l > 0:  # layer 0's attn_norm is the identity and has no weight
            w[p + "attn_norm.weight"] = norm(p + "attn_norm")
        w[p + "attn.Wqkv.weight"] = linear(p + "attn.Wqkv", 3 * HIDDEN, HIDDEN, gain=1.5)
        w[p + "attn.Wo.weight"] = linear(p + "attn.Wo", HIDDEN, HIDDEN, gain=0.7)
        w[p + "mlp_norm.weight"] = norm(p + "mlp_norm")
        w[p + "mlp.Wi.weight"] = linear(p + "mlp.Wi", 2 * INTER, HIDDEN)
        w[p + "mlp.Wo.weight"] = linear(p + "mlp.Wo", HIDDEN, INTER, gain=0.7)
    return w


def config(ids: dict[str, int], vocab: int) -> dict:
    cfg = {
        "architectures": ["ModernBertModel"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["cls"],
        "classifier_activation": "gelu",
        "classifier_bias": False,
        "classifier_dropout": 0.0,
        "classifier_pooling": "mean",
        "cls_token_id": ids["cls"],
        "decoder_bias": True,
        "deterministic_flash_attn": False,
        "dtype": "float32",
        "embedding_dropout": 0.0,
        "eos_token_id": ids["sep"],
        "hidden_activation": "gelu",
        "hidden_size": HIDDEN,
        "initializer_cutoff_factor": 2.0,
        "initializer_range": 0.02,
        "intermediate_size": INTER,
        "layer_types": [
            "full_attention" if l % GLOBAL_EVERY == 0 else "sliding_attention"
            for l in range(LAYERS)
        ],
        "local_attention": LOCAL,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "mlp_dropout": 0.0,
        "model_type": "modernbert",
        "norm_bias": False,
        "norm_eps": 1e-05,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": ids["pad"],
        "rope_parameters": {
            "full_attention": {"rope_theta": 160000.0, "rope_type": "default"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        },
        "sep_token_id": ids["sep"],
        "sparse_pred_ignore_index": -100,
        "sparse_prediction": False,
        "tie_word_embeddings": True,
        "transformers_version": "5.3.0",
        "vocab_size": vocab,
    }
    return {k: cfg[k] for k in sorted(cfg)}


def stamp() -> str:
    h = hashlib.sha256()
    for script in ("build_bench_models.py", "build_test_models.py"):
        h.update((REPO / "scripts" / script).read_bytes())
    return h.hexdigest()


def build(out: Path, tokenizer_from: Path) -> None:
    tok_bytes = (tokenizer_from / "tokenizer.json").read_bytes()
    tok = json.loads(tok_bytes)
    by_content = {t["content"]: t["id"] for t in tok["added_tokens"]}
    ids = {
        "pad": by_content["[PAD]"],
        "cls": by_content["[CLS]"],
        "sep": by_content["[SEP]"],
        "mask": by_content["[MASK]"],
    }
    if "[Q] " not in by_content or "[D] " not in by_content:
        raise SystemExit(f"{tokenizer_from}/tokenizer.json has no [Q] / [D] prefix tokens")
    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    if max(by_content.values()) >= vocab:
        raise SystemExit(f"{tokenizer_from}: token ids reach past vocab_size {vocab}")

    w = Writer()
    root = out.parent
    w.write(root, out.name, "config.json", json_bytes(config(ids, vocab)))
    w.write(root, out.name, "model.safetensors", safetensors_bytes(weights(vocab)))
    for name in TOKENIZER_FILES:
        w.write(root, out.name, name, (tokenizer_from / name).read_bytes())
    w.write(
        root,
        out.name,
        "sentence_bert_config.json",
        json_bytes({"max_seq_length": 179, "do_lower_case": False}, 4),
    )
    w.write(root, out.name, "modules.json", modules_json(1))
    w.write(
        root,
        out.name,
        "config_sentence_transformers.json",
        colbert_settings(query_length=32, document_length=180),
    )
    dense = uniform("bench-modernbert/1_Dense/linear.weight", (DENSE_OUT, HIDDEN), HIDDEN**-0.5)
    w.write(
        root,
        out.name,
        "1_Dense/config.json",
        dense_config(HIDDEN, DENSE_OUT, False, IDENTITY, False),
    )
    w.write(
        root, out.name, "1_Dense/model.safetensors", safetensors_bytes({"linear.weight": dense})
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=REPO / "target" / "bench-models")
    ap.add_argument("--tokenizer-from", type=Path, default=TOKENIZER_FROM)
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args()

    folder = args.out / NAME
    stamp_file = folder / ".built-by"
    want = stamp()
    if not args.force and stamp_file.is_file() and stamp_file.read_text().strip() == want:
        print(f"up to date: {folder}")
        return 0
    if not (args.tokenizer_from / "tokenizer.json").is_file():
        raise SystemExit(
            f"{args.tokenizer_from} is missing: run python scripts/build_test_models.py first"
        )
    if folder.exists():
        shutil.rmtree(folder)
    build(folder, args.tokenizer_from)
    stamp_file.write_text(want + "\n")
    size = (folder / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {folder} (model.safetensors {size:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Regenerate the fuzzing fixtures: the tiny BERT model and the seed corpora.

    python fuzz/make_corpus.py            # model (if its source exists) + corpora
    python fuzz/make_corpus.py --corpus   # corpora only, from the committed models

* ``fuzz/models/bert-tiny``: a random BERT backbone (2 layers, hidden 32, 4 heads) with
  a WordPiece tokenizer cut down to the first 2,500 ids of the all-MiniLM-L6-v2
  vocabulary (``tests/models/minilm-colbert``, made by ``scripts/build_test_models.py``)
  plus ``[Q] ``/``[D] ``. The fuzz targets need a BERT small enough to load in well under
  a millisecond; the MiniLM model itself is 90 MB. Weights come from a counter-based
  hash (no RNG library), so the bytes are the same on every machine.
* ``fuzz/corpus/<target>/``: seed inputs in the byte layout each target parses (see
  ``fuzz/src/lib.rs`` and the targets): real model files, real safetensors headers,
  texts with option bytes, and a few real-shaped matrices for scoring.

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
MODERNBERT = REPO / "tests" / "fixtures" / "models" / "modernbert-v4"
MINILM = REPO / "tests" / "models" / "minilm-colbert"
BERT_TINY = FUZZ / "models" / "bert-tiny"
CORPUS = FUZZ / "corpus"

# Model selector byte values understood by fuzz/src/lib.rs (`Which::from_byte`: even =
# ModernBERT, odd = BERT).
MODELS = {0: MODERNBERT, 1: BERT_TINY}

VOCAB_KEEP = 2500
HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS, DENSE_OUT = 32, 2, 4, 64, 512, 16

# ---------------------------------------------------------------------------- the model


def values(name: str, count: int, std: float, mean: float = 0.0) -> list[float]:
    """`count` deterministic values, roughly N(mean, std^2): a sum of four uniforms per value
    from sha256 of (name, counter); enough for a random test model."""
    out = []
    block = 0
    while len(out) < count:
        digest = hashlib.sha256(f"{name}/{block}".encode()).digest()
        for i in range(0, 32, 8):
            u = sum(digest[i + k * 2] | digest[i + k * 2 + 1] << 8 for k in range(4))
            # Sum of four 16-bit uniforms: mean 2 * 65535, variance 4 / 12 * 65535^2.
            z = (u - 2 * 65535) / (65535 / 3**0.5)
            out.append(mean + std * z)
        block += 1
    return out[:count]


def safetensors_bytes(tensors: dict[str, tuple[list[int], list[float]]]) -> bytes:
    header = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        shape, data = tensors[name]
        raw = struct.pack(f"<{len(data)}f", *data)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def build_bert_tiny() -> None:
    source = json.loads((MINILM / "tokenizer.json").read_text())
    vocab = {t: i for t, i in source["model"]["vocab"].items() if i < VOCAB_KEEP}
    assert len(vocab) == VOCAB_KEEP, "expected the MiniLM vocabulary's ids to be contiguous"
    tokenizer = dict(source)
    tokenizer["truncation"] = None
    tokenizer["padding"] = None
    added = []
    for token in source["added_tokens"]:
        token = dict(token)
        if token["content"] == "[Q] ":
            token["id"] = VOCAB_KEEP
        elif token["content"] == "[D] ":
            token["id"] = VOCAB_KEEP + 1
        added.append(token)
    tokenizer["added_tokens"] = added
    tokenizer["model"] = dict(source["model"], vocab=vocab)
    vocab_size = VOCAB_KEEP + 2

    if BERT_TINY.exists():
        shutil.rmtree(BERT_TINY)
    (BERT_TINY / "1_Dense").mkdir(parents=True)
    (BERT_TINY / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")
    for name in [
        "tokenizer_config.json",
        "special_tokens_map.json",
        "config_sentence_transformers.json",
        "modules.json",
        "sentence_bert_config.json",
    ]:
        shutil.copyfile(MINILM / name, BERT_TINY / name)
    config = json.loads((MINILM / "config.json").read_text())
    config.pop("_name_or_path", None)
    config.update(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=POSITIONS,
        vocab_size=vocab_size,
    )
    write_json(BERT_TINY / "config.json", config)
    write_json(
        BERT_TINY / "1_Dense" / "config.json",
        {
            "in_features": HIDDEN,
            "out_features": DENSE_OUT,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        },
    )

    t: dict[str, tuple[list[int], list[float]]] = {}

    def add(name: str, shape: list[int], std: float = 0.05, mean: float = 0.0) -> None:
        n = 1
        for s in shape:
            n *= s
        t[name] = (shape, values(name, n, std, mean))

    add("embeddings.word_embeddings.weight", [vocab_size, HIDDEN])
    add("embeddings.position_embeddings.weight", [POSITIONS, HIDDEN])
    add("embeddings.token_type_embeddings.weight", [2, HIDDEN])
    add("embeddings.LayerNorm.weight", [HIDDEN], 0.02, 1.0)
    add("embeddings.LayerNorm.bias", [HIDDEN], 0.02)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for part in ["query", "key", "value"]:
            add(f"{p}.attention.self.{part}.weight", [HIDDEN, HIDDEN])
            add(f"{p}.attention.self.{part}.bias", [HIDDEN], 0.02)
        add(f"{p}.attention.output.dense.weight", [HIDDEN, HIDDEN])
        add(f"{p}.attention.output.dense.bias", [HIDDEN], 0.02)
        add(f"{p}.attention.output.LayerNorm.weight", [HIDDEN], 0.02, 1.0)
        add(f"{p}.attention.output.LayerNorm.bias", [HIDDEN], 0.02)
        add(f"{p}.intermediate.dense.weight", [INTERMEDIATE, HIDDEN])
        add(f"{p}.intermediate.dense.bias", [INTERMEDIATE], 0.02)
        add(f"{p}.output.dense.weight", [HIDDEN, INTERMEDIATE])
        add(f"{p}.output.dense.bias", [HIDDEN], 0.02)
        add(f"{p}.output.LayerNorm.weight", [HIDDEN], 0.02, 1.0)
        add(f"{p}.output.LayerNorm.bias", [HIDDEN], 0.02)
    (BERT_TINY / "model.safetensors").write_bytes(safetensors_bytes(t))
    dense = {"linear.weight": ([DENSE_OUT, HIDDEN], values("dense", DENSE_OUT * HIDDEN, 0.2))}
    (BERT_TINY / "1_Dense" / "model.safetensors").write_bytes(safetensors_bytes(dense))


# ---------------------------------------------------------------------------- corpora


def header_of(data: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n]


def build_corpora() -> None:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    seeds: dict[str, dict[str, bytes]] = {
        t: {} for t in ["safetensors", "config", "tokenizer", "scoring"]
    }

    for m, folder in MODELS.items():
        tag = "modernbert" if m == 0 else "bert"
        # safetensors: byte 0 = model | file << 1 | header-only << 2 (see the target).
        for f, rel in enumerate(["model.safetensors", "1_Dense/model.safetensors"]):
            data = (folder / rel).read_bytes()
            name = "backbone" if f == 0 else "dense"
            seeds["safetensors"][f"{tag}-{name}-header"] = bytes([m | f << 1 | 4]) + header_of(data)
            if f == 1:
                # The whole Dense file is small enough to mutate as it is.
                seeds["safetensors"][f"{tag}-{name}-raw"] = bytes([m | f << 1]) + data
        # The whole backbone file of the smaller model only: large inputs slow every run.
        if m == 1:
            data = (folder / "model.safetensors").read_bytes()
            seeds["safetensors"][f"{tag}-backbone-raw"] = bytes([m]) + data
        # config: byte 0 = model | file << 1.
        for f, rel in enumerate(
            [
                "modules.json",
                "config_sentence_transformers.json",
                "config.json",
                "1_Dense/config.json",
                "sentence_bert_config.json",
            ]
        ):
            seeds["config"][f"{tag}-{rel.replace('/', '-')}"] = (
                bytes([m | f << 1]) + (folder / rel).read_bytes()
            )
        # tokenizer: byte 0 = model | mode << 1; modes 0-2 replace a file, 3 = options + texts.
        for f, rel in enumerate(
            ["tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]
        ):
            seeds["tokenizer"][f"{tag}-{rel}"] = bytes([m | f << 1]) + (folder / rel).read_bytes()
        texts = [
            "what is late interaction?",
            "ColBERT scores documents with MaxSim over token embeddings.",
            "  Ünïcödé — 日本語のテキスト, émojis 🙂 and\ttabs\n",
            "[Q] [D] [MASK] [CLS] [SEP] <|endoftext|>",
            "",
        ]
        # Options: 8 bytes (flags, query_length, document_length, pool_factor, skiplist
        # count, ...) then NUL-separated strings (prefixes, skiplist words, texts).
        for i, flags in enumerate([0x00, 0xFF, 0x15, 0x2A]):
            opts = bytes([flags, 32, 180, 2, 2, 1, 0, 0])
            strings = ["[Q] ", "[D] ", ".", "the", *texts]
            seeds["tokenizer"][f"{tag}-texts-{i}"] = (
                bytes([m | 3 << 1]) + opts + "\0".join(strings).encode()
            )

    # scoring: a few real-shaped matrices (rows of unit vectors of width 16 and 32).
    def f32s(name: str, n: int) -> bytes:
        return struct.pack(f"<{n}f", *values(name, n, 0.25))

    for i, (nq, nd, dim, rows) in enumerate(
        [(1, 1, 16, 4), (2, 3, 16, 6), (1, 4, 32, 8), (3, 2, 8, 12)]
    ):
        # Layout (see the target): counts, then per matrix rows, dim, length tweak, values.
        out = bytearray([nq, nd, 3, 2, 1, 0, 0, 0])
        for j in range(nq + nd):
            out += bytes([rows + j, dim, 0])
            out += f32s(f"scoring/{i}/{j}", (rows + j) * dim)
        seeds["scoring"][f"real-shaped-{i}"] = bytes(out)

    total = 0
    for target, files in seeds.items():
        d = CORPUS / target
        d.mkdir(parents=True)
        for name, data in sorted(files.items()):
            (d / name).write_bytes(data)
            total += len(data)
    print(f"wrote {sum(len(f) for f in seeds.values())} seeds, {total} bytes, under {CORPUS}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", action="store_true", help="only the corpora")
    args = parser.parse_args()
    if not args.corpus:
        if not (MINILM / "tokenizer.json").is_file():
            print(f"{MINILM} is missing: run scripts/build_test_models.py first", file=sys.stderr)
            return 1
        build_bert_tiny()
    build_corpora()
    return 0


if __name__ == "__main__":
    sys.exit(main())

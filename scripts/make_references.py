#!/usr/bin/env python3
"""Generate PyLate reference outputs for latebird's parity tests.

Needs PyLate + torch (see scripts/requirements-references.txt); run it in a virtualenv
outside the repository, after building the MiniLM models:

    python scripts/build_test_models.py --out tests/models
    python scripts/make_references.py [--models-dir tests/models] [--only MODEL[__VARIANT]]

For every (model, variant) it writes tests/fixtures/references/<model>__<variant>.safetensors:

  query.<i>          float32 [n_i, dim]  PyLate encode(..., is_query=True) output for query i
  document.<i>       float32 [m_i, dim]  PyLate encode(..., is_query=False) output for document i
  query_ids.<i>      int64   [T]         input_ids PyLate feeds the model for query i tokenized alone
  query_mask.<i>     int64   [T]         attention_mask for the same
  document_ids.<i>   int64   [T]         input_ids for document i tokenized alone (batch of one,
                                         so no padding)
  document_mask.<i>  int64   [T]         attention_mask for the same
  document_keep.<i>  int64   [T]         1 where the row is kept in document.<i> (attention 1
                                         and not in the skiplist)

The embeddings come from one encode() call over all texts (one padded batch); the metadata
records the largest difference against encoding each text alone, against eager attention
(large for ModernBERT queries: see below) and against an independent float64 numpy forward
pass written here from the model files (the run fails if that differs by more than 1e-4).

Note on ModernBERT with expansion: in sliding-window layers, expansion positions farther than
local_attention/2 from every real token have no key to attend to; torch sdpa returns 0 for
such rows while eager attention averages every value uniformly. References use sdpa.
texts.json (tests/fixtures/texts.json) is the source of truth for the texts, plus EXTRA_TEXTS for
models that need texts of their own; a copy is kept in the metadata ("texts") together with the
overrides, the resolved settings and the versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import string
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
TEXTS = REPO / "tests" / "fixtures" / "texts.json"
OUT = REPO / "tests" / "fixtures" / "references"
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"

# model -> (location kind, {variant: overrides})
MODELS = {
    "minilm-colbert": (
        "built",
        {
            "default": {},
            "expand_attend": {"attend_to_expansion_tokens": True},
            "noexpand": {"do_query_expansion": False, "query_length": 12, "document_length": 20},
            "prefix_skiplist": {"document_length": 40, "skiplist_words": ["the", "a", "of", "."]},
            "noprefix": {
                "query_prefix": "",
                "document_prefix": "",
                "query_length": 16,
                "document_length": 24,
            },
        },
    ),
    "minilm-colbert-f16-2dense": ("built", {"default": {}}),
    "modernbert-v4": (
        "fixture",
        {
            "default": {},
            # "the" and "Ġthe" are single BPE tokens; "notatoken123" is not and maps to [UNK].
            "skiplist_unk": {"skiplist_words": ["the", "Ġthe", ",", "notatoken123"]},
            "expand_attend": {"attend_to_expansion_tokens": True},
        },
    ),
    "modernbert-v5": ("fixture", {"default": {}}),
    "xlm-roberta": (
        "fixture",
        {
            "default": {},
            "expand_attend": {"attend_to_expansion_tokens": True},
            # "▁the" and "," are pieces; "the" and "notatoken123" are not and map to <unk>.
            "skiplist_unk": {"skiplist_words": ["\u2581the", "the", ",", "notatoken123"]},
            # The longest sequence the position table allows (514 rows, offset by pad + 1).
            "maxlen": {"document_length": 512, "query_length": 64},
        },
    ),
}

# Texts appended to texts.json's for one model (stored in each reference's "texts" with the
# others). XLM-R: a <pad> token inside a text takes position padding_idx and does not advance
# the positions after it; the ''/`` replacements and the whitespace around added tokens are
# where transformers 5's rebuilt XLM-R tokenizer differs from tokenizer.json.
EXTRA_TEXTS = {
    "xlm-roberta": {
        "queries": [
            "hello <pad> world <mask> end",
            "He said ''hi'' and ``bye``",
            "x [D] y [Q] z",
        ],
        "documents": [
            "<s> a </s> b <unk> c <pad> d <pad><pad> e",
            "tab\there\nnewline\u3000ideographic\u00a0nbsp  double  spaces",
            "He said ''hi'' and ``bye``, <mask> twice <mask>",
        ],
    },
}


def versions() -> dict:
    import pylate
    import sentence_transformers
    import tokenizers
    import transformers

    return {
        "pylate": pylate.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def load(folder: Path, overrides: dict, attn: str):
    from pylate import models

    return models.ColBERT(
        model_name_or_path=str(folder),
        device="cpu",
        model_kwargs={"attn_implementation": attn, "dtype": torch.float32},
        **overrides,
    )


def encode(model, texts: list[str], is_query: bool, batch_size: int) -> list[np.ndarray]:
    out = model.encode(
        texts,
        is_query=is_query,
        batch_size=batch_size,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return [np.asarray(o, dtype=np.float32) for o in out]


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    m = 0.0
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        if x.size:
            m = max(m, float(np.abs(x - y).max()))
    return m


def check_backbone(model) -> dict:
    auto = model[0].auto_model
    impl = auto.config._attn_implementation
    if impl != "sdpa":
        raise SystemExit(f"expected sdpa attention, got {impl!r}")
    info = {
        "attn_implementation": impl,
        "backbone_class": type(auto).__name__,
        "dtype": str(auto.dtype),
    }
    if auto.dtype != torch.float32:
        raise SystemExit(f"backbone is not float32: {auto.dtype}")
    for p in model.parameters():
        if p.dtype != torch.float32:
            raise SystemExit(f"a parameter is {p.dtype}, not float32")
    if getattr(auto.config, "model_type", "") == "modernbert":
        info["layer_types"] = list(auto.config.layer_types)
        info["sliding_window"] = auto.config.sliding_window
        info["rope_parameters"] = auto.config.rope_parameters
    return info


# ---------------------------------------------------------------------------
# Independent float64 numpy forward pass, used to cross-check every reference
# (it re-implements the backbone + Dense chain from the files alone).
# ---------------------------------------------------------------------------


def _np_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file as load_torch

    return {k: v.to(torch.float64).numpy() for k, v in load_torch(str(path)).items()}


def _np_layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * w
    return y + b if b is not None else y


def _np_gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _np_attention(q, k, v, allow):
    """q,k,v [heads, T, d]; allow [T, T] bool. Rows with no allowed key give 0 (as torch sdpa)."""
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    s = np.where(allow[None], s, -np.inf)
    mx = s.max(-1, keepdims=True)
    empty = ~np.isfinite(mx)
    p = np.exp(s - np.where(empty, 0.0, mx))
    den = p.sum(-1, keepdims=True)
    p = np.where(empty, 0.0, p / np.where(den == 0, 1.0, den))
    return p @ v


class NumpyColBERT:
    def __init__(self, folder: Path):
        self.cfg = json.loads((folder / "config.json").read_text())
        raw = _np_weights(folder / "model.safetensors")
        self.modern = self.cfg.get("model_type") == "modernbert"
        self.roberta = self.cfg.get("model_type") == "xlm-roberta"
        w = {}
        for k, v in raw.items():
            for pre in ("bert.", "model.", "roberta."):
                if k.startswith(pre):
                    k = k[len(pre) :]
            k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
                "LayerNorm.beta", "LayerNorm.bias"
            )
            w[k] = v
        self.w = w
        self.dense = []
        for m in json.loads((folder / "modules.json").read_text())[1:]:
            c = json.loads((folder / m["path"] / "config.json").read_text())
            self.dense.append((c, _np_weights(folder / m["path"] / "model.safetensors")))

    def _bert(self, ids, mask):
        c, w = self.cfg, self.w
        T, H = len(ids), c["hidden_size"]
        nh = c["num_attention_heads"]
        eps = c["layer_norm_eps"]
        if self.roberta:
            # fairseq's positions: padding_idx + 1 + (non-pad tokens so far); pad tokens take
            # padding_idx and do not count.
            pad = c["pad_token_id"]
            real = ids != pad
            pos = np.cumsum(real) * real + pad
        else:
            pos = np.arange(T)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = x + w["embeddings.position_embeddings.weight"][pos]
        x = _np_layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        allow = np.repeat((mask == 1)[None, :], T, 0)

        def lin(t, p):
            return t @ w[p + ".weight"].T + w[p + ".bias"]

        for l in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{l}."
            q, k, v = (
                lin(x, p + "attention.self." + n).reshape(T, nh, -1).transpose(1, 0, 2)
                for n in ("query", "key", "value")
            )
            o = _np_attention(q, k, v, allow).transpose(1, 0, 2).reshape(T, H)
            x = _np_layernorm(
                lin(o, p + "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            i = _np_gelu(lin(x, p + "intermediate.dense"))
            x = _np_layernorm(
                lin(i, p + "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                eps,
            )
        return x

    def _modernbert(self, ids, mask):
        c, w = self.cfg, self.w
        T, H = len(ids), c["hidden_size"]
        nh = c["num_attention_heads"]
        hd = H // nh
        eps = c["norm_eps"]
        L = c["num_hidden_layers"]
        if "layer_types" in c:
            types = c["layer_types"]
            theta = {
                t: c["rope_parameters"][t]["rope_theta"]
                for t in ("full_attention", "sliding_attention")
            }
        else:
            g = c.get("global_attn_every_n_layers", 3)
            types = ["full_attention" if l % g == 0 else "sliding_attention" for l in range(L)]
            theta = {
                "full_attention": c.get("global_rope_theta", 160000.0),
                "sliding_attention": c.get("local_rope_theta", 10000.0),
            }
        half = c["local_attention"] // 2
        pos = np.arange(T)
        pad = np.repeat((mask == 1)[None, :], T, 0)
        allow = {
            "full_attention": pad,
            "sliding_attention": pad & (np.abs(pos[:, None] - pos[None, :]) <= half),
        }

        def rope(t, base):
            inv = 1.0 / (base ** (np.arange(0, hd, 2) / hd))
            f = pos[:, None] * inv[None, :]
            e = np.concatenate([f, f], -1)
            rot = np.concatenate([-t[..., hd // 2 :], t[..., : hd // 2]], -1)
            return t * np.cos(e) + rot * np.sin(e)

        x = _np_layernorm(
            w["embeddings.tok_embeddings.weight"][ids], w["embeddings.norm.weight"], None, eps
        )
        for l in range(L):
            p = f"layers.{l}."
            h = x if l == 0 else _np_layernorm(x, w[p + "attn_norm.weight"], None, eps)
            qkv = h @ w[p + "attn.Wqkv.weight"].T
            q, k, v = (
                qkv[:, j * H : (j + 1) * H].reshape(T, nh, hd).transpose(1, 0, 2) for j in range(3)
            )
            base = theta[types[l]]
            o = (
                _np_attention(rope(q, base), rope(k, base), v, allow[types[l]])
                .transpose(1, 0, 2)
                .reshape(T, H)
            )
            x = x + o @ w[p + "attn.Wo.weight"].T
            h = _np_layernorm(x, w[p + "mlp_norm.weight"], None, eps) @ w[p + "mlp.Wi.weight"].T
            a, gate = np.split(h, 2, axis=-1)
            x = x + (_np_gelu(a) * gate) @ w[p + "mlp.Wo.weight"].T
        return _np_layernorm(x, w["final_norm.weight"], None, eps)

    def __call__(self, ids, mask):
        x = self._modernbert(ids, mask) if self.modern else self._bert(ids, mask)
        for c, w in self.dense:
            y = x @ w["linear.weight"].T
            if c.get("bias", True):
                y = y + w["linear.bias"]
            act = c.get("activation_function", "torch.nn.modules.activation.Tanh")
            if act.endswith("Tanh"):
                y = np.tanh(y)
            elif not act.endswith("Identity"):
                raise ValueError(act)
            if c.get("use_residual", False):
                y = y + (x @ w["residual.weight"].T if c["in_features"] != c["out_features"] else x)
            x = y
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def numpy_check(
    folder: Path, tensors: dict, n_queries: int, n_docs: int, query_keep_all: bool
) -> float:
    net = NumpyColBERT(folder)
    worst = 0.0
    for kind, n in (("query", n_queries), ("document", n_docs)):
        for i in range(n):
            ids, mask = tensors[f"{kind}_ids.{i}"], tensors[f"{kind}_mask.{i}"]
            if kind == "document":
                keep = tensors[f"document_keep.{i}"].astype(bool)
            else:
                keep = np.ones(len(ids), bool) if query_keep_all else mask.astype(bool)
            y = net(ids, mask)[keep]
            worst = max(worst, float(np.abs(y - tensors[f"{kind}.{i}"]).max()))
    return worst


def build(
    model_name: str, variant: str, overrides: dict, folder: Path, texts: dict, vers: dict
) -> Path:
    queries, documents = texts["queries"], texts["documents"]
    model = load(folder, overrides, "sdpa")
    model.eval()
    info = check_backbone(model)

    q_emb = encode(model, queries, True, batch_size=len(queries))
    d_emb = encode(model, documents, False, batch_size=len(documents))
    # Each text alone (no padding at all) and with eager attention, for the record.
    q_alone = [encode(model, [t], True, 1)[0] for t in queries]
    d_alone = [encode(model, [t], False, 1)[0] for t in documents]
    eager = load(folder, overrides, "eager")
    eager.eval()
    q_eager = encode(eager, queries, True, batch_size=len(queries))
    d_eager = encode(eager, documents, False, batch_size=len(documents))

    tensors: dict[str, np.ndarray] = {}
    skip = set(int(s) for s in model.skiplist)
    for kind, texts_k, embs in (("query", queries, q_emb), ("document", documents, d_emb)):
        is_query = kind == "query"
        for i, (text, emb) in enumerate(zip(texts_k, embs)):
            feats = model.tokenize([text], is_query=is_query)
            ids = feats["input_ids"][0].cpu().numpy().astype(np.int64)
            mask = feats["attention_mask"][0].cpu().numpy().astype(np.int64)
            if is_query:
                keep = np.ones_like(ids) if model.do_query_expansion else mask.copy()
            else:
                keep = np.array(
                    [1 if (m == 1 and int(t) not in skip) else 0 for t, m in zip(ids, mask)],
                    dtype=np.int64,
                )
                tensors[f"document_keep.{i}"] = keep
            if int(keep.sum()) != emb.shape[0]:
                raise SystemExit(
                    f"{model_name}/{variant} {kind} {i}: {emb.shape[0]} rows but {keep.sum()} kept ids"
                )
            tensors[f"{kind}.{i}"] = np.ascontiguousarray(emb, dtype=np.float32)
            tensors[f"{kind}_ids.{i}"] = ids
            tensors[f"{kind}_mask.{i}"] = mask

    tok = model.tokenizer
    resolved = {
        "query_prefix": model.query_prefix,
        "document_prefix": model.document_prefix,
        "query_prefix_id": model.query_prefix_id,
        "document_prefix_id": model.document_prefix_id,
        "query_length": model.query_length,
        "document_length": model.document_length,
        "do_query_expansion": model.do_query_expansion,
        "attend_to_expansion_tokens": model.attend_to_expansion_tokens,
        "skiplist_words": list(model.skiplist_words),
        "skiplist_ids": [int(s) for s in model.skiplist],
        "pad_token_id": tok.pad_token_id,
        "mask_token_id": tok.mask_token_id,
        "unk_token_id": tok.unk_token_id,
        "dim": int(q_emb[0].shape[1]),
    }
    diffs = {
        "numpy_float64_check": numpy_check(
            folder, tensors, len(queries), len(documents), model.do_query_expansion
        ),
        "batched_vs_alone_query": max_diff(q_emb, q_alone),
        "batched_vs_alone_document": max_diff(d_emb, d_alone),
        "sdpa_vs_eager_query": max_diff(q_emb, q_eager),
        "sdpa_vs_eager_document": max_diff(d_emb, d_eager),
    }
    meta = {
        "model": model_name,
        "variant": variant,
        "overrides": json.dumps(overrides, ensure_ascii=False, sort_keys=True),
        "resolved": json.dumps(resolved, ensure_ascii=False),
        "backbone": json.dumps(info),
        "max_abs_diff": json.dumps(diffs),
        "versions": json.dumps(vers, sort_keys=True),
        "encode": json.dumps(
            {
                "device": "cpu",
                "attn_implementation": "sdpa",
                "dtype": "float32",
                "query_batch_size": len(queries),
                "document_batch_size": len(documents),
                "ids": "tokenize([text]) alone",
            }
        ),
        "texts_sha256": hashlib.sha256(TEXTS.read_bytes()).hexdigest(),
        "texts": json.dumps(texts, ensure_ascii=False),
    }
    if diffs["numpy_float64_check"] > 1e-4:
        raise SystemExit(
            f"{model_name}/{variant}: independent numpy forward differs by {diffs['numpy_float64_check']}"
        )
    from safetensors.numpy import save_file

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{model_name}__{variant}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    path.chmod(0o644)
    print(
        f"{path.relative_to(REPO)}: {path.stat().st_size} bytes, dim {resolved['dim']}, diffs {diffs}"
    )
    return path


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--models-dir", default=str(REPO / "tests" / "models"), help="built MiniLM models"
    )
    ap.add_argument(
        "--fixtures-dir", default=str(FIXTURE_MODELS), help="committed ModernBERT fixtures"
    )
    ap.add_argument(
        "--only", action="append", default=[], help="MODEL or MODEL__VARIANT (repeatable)"
    )
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    texts = json.loads(TEXTS.read_text(encoding="utf-8"))
    vers = versions()
    print("versions:", vers)
    assert list(string.punctuation) == list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    for model_name, (kind, variants) in MODELS.items():
        folder = Path(args.models_dir if kind == "built" else args.fixtures_dir) / model_name
        extra = EXTRA_TEXTS.get(model_name, {})
        model_texts = {k: v + extra.get(k, []) for k, v in texts.items()}
        for variant, overrides in variants.items():
            key = f"{model_name}__{variant}"
            if args.only and model_name not in args.only and key not in args.only:
                continue
            if not (folder / "modules.json").exists():
                raise SystemExit(
                    f"missing model folder {folder} (run scripts/build_test_models.py first)"
                )
            build(model_name, variant, overrides, folder, model_texts, vers)
    return 0


if __name__ == "__main__":
    sys.exit(main())

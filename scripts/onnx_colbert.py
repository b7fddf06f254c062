"""PyLate's ColBERT encode() on ONNX Runtime, without torch (the benchmark's third system).

    from onnx_colbert import OnnxColBERT, PyLateTokenizer
    model = OnnxColBERT("path/to/pylate-model", "model.onnx", threads=2)
    queries = model.encode(["what is late interaction?"], is_query=True)

The graph comes from scripts/export_onnx.py (backbone, Dense layers and L2 normalisation;
inputs input_ids and attention_mask, output [batch, sequence, dim]). This file does the rest
of PyLate's work with the `tokenizers` package and numpy:

* strip the text, tokenize with special tokens, truncating so that the sequence has at most
  length - 1 ids (length when the prefix is empty);
* insert the prefix token's id at position 1, with attention 1;
* queries with expansion: pad to exactly query_length with the MASK id, attention 0 on those
  positions (1 everywhere when attend_to_expansion_tokens); other inputs are padded to the
  batch's longest with the MASK id, attention 0;
* output rows: every row of an expanded query; rows with attention 1 otherwise, and for
  documents only those whose id is not in the skiplist (words looked up in the vocabulary,
  UNK when a word is not a single token).

Texts are encoded in batches of `batch_size` sorted by token count (longest first) and
returned in input order, one float32 [rows, dim] array per text.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

DEFAULTS = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 32,
    "document_length": 180,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": None,
}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json store it."""
    if isinstance(value, dict):
        return value.get("content")
    return value


class PyLateTokenizer:
    """Turns texts into the input_ids / attention_mask rows PyLate feeds its model."""

    def __init__(self, model_dir: str | Path, **overrides) -> None:
        """`overrides` take PyLate's arguments (query_length, skiplist_words, ...)."""
        folder = Path(model_dir)
        settings = dict(DEFAULTS)
        st_config = _read_json(folder / "config_sentence_transformers.json")
        settings.update({k: st_config[k] for k in DEFAULTS if st_config.get(k) is not None})
        if unknown := set(overrides) - set(DEFAULTS):
            raise TypeError(f"unknown settings {sorted(unknown)}")
        settings.update({k: v for k, v in overrides.items() if v is not None})
        if settings["skiplist_words"] is None:
            settings["skiplist_words"] = list(string.punctuation)
        if not settings["do_query_expansion"]:
            settings["attend_to_expansion_tokens"] = False
        self.settings = settings

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        tok_config = _read_json(folder / "tokenizer_config.json")
        special_map = _read_json(folder / "special_tokens_map.json")

        def special_id(kind: str) -> int | None:
            text = _token_text(tok_config.get(kind)) or _token_text(special_map.get(kind))
            return None if text is None else self.tokenizer.token_to_id(text)

        # PyLate pads with MASK, else EOS, else the tokenizer's own padding token.
        pad = special_id("mask_token")
        for kind in ("eos_token", "pad_token"):
            if pad is None:
                pad = special_id(kind)
        if pad is None:
            raise ValueError(f"{folder}: no MASK, EOS or PAD token to pad with")
        self.pad_id = pad
        unk = special_id("unk_token")
        skip = (self.tokenizer.token_to_id(w) for w in settings["skiplist_words"])
        self.skiplist = np.array(
            sorted({unk if i is None else i for i in skip} - {None}), dtype=np.int64
        )
        self.prefix_ids = {}
        for is_query, key in ((True, "query_prefix"), (False, "document_prefix")):
            prefix = settings[key]
            self.prefix_ids[is_query] = self.tokenizer.token_to_id(prefix) if prefix else None
            if prefix and self.prefix_ids[is_query] is None:
                raise ValueError(f"{folder}: the prefix {prefix!r} is not a token")

    def expands(self, is_query: bool) -> bool:
        return is_query and self.settings["do_query_expansion"]

    def ids(self, texts: list[str], is_query: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """(input_ids, attention_mask) per text, int64, unpadded unless expanded."""
        length = self.settings["query_length" if is_query else "document_length"]
        prefix = self.prefix_ids[is_query]
        room = length - 1 if prefix is not None else length
        self.tokenizer.enable_truncation(room, strategy="longest_first", direction="right")
        encodings = self.tokenizer.encode_batch([t.strip() for t in texts])
        attend_all = is_query and self.settings["attend_to_expansion_tokens"]
        out = []
        for enc in encodings:
            ids = list(enc.ids)
            real = len(ids)
            if self.expands(is_query):
                ids += [self.pad_id] * (room - real)
            mask = [1] * real + [0] * (len(ids) - real)
            if prefix is not None:
                ids.insert(1, prefix)
                mask.insert(1, 1)
            if attend_all:
                mask = [1] * len(ids)
            out.append((np.array(ids, dtype=np.int64), np.array(mask, dtype=np.int64)))
        return out

    def keep(self, ids: np.ndarray, mask: np.ndarray, is_query: bool) -> np.ndarray:
        """The output rows of one text, as a boolean mask over its positions."""
        if self.expands(is_query):
            return np.ones(len(ids), dtype=bool)
        kept = mask.astype(bool)
        if not is_query:
            kept &= ~np.isin(ids, self.skiplist)
        return kept


class OnnxColBERT:
    """An exported PyLate model on an ONNX Runtime CPU session."""

    def __init__(self, model_dir: str | Path, onnx_path: str | Path, threads: int) -> None:
        import onnxruntime as ort

        self.tokenizer = PyLateTokenizer(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], is_query: bool, batch_size: int = 32) -> list[np.ndarray]:
        tokenized = self.tokenizer.ids(texts, is_query)
        order = sorted(range(len(texts)), key=lambda i: -len(tokenized[i][0]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(tokenized[i][0]) for i in batch)
            input_ids = np.full((len(batch), width), self.tokenizer.pad_id, dtype=np.int64)
            attention = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids, mask = tokenized[i]
                input_ids[row, : len(ids)] = ids
                attention[row, : len(mask)] = mask
            (embeddings,) = self.session.run(
                None, {"input_ids": input_ids, "attention_mask": attention}
            )
            for row, i in enumerate(batch):
                ids, mask = tokenized[i]
                kept = self.tokenizer.keep(ids, mask, is_query)
                out[i] = np.ascontiguousarray(embeddings[row, : len(ids)][kept])
        return out  # type: ignore[return-value]

#!/usr/bin/env python3
"""Export a PyLate model folder to ONNX: backbone, every Dense layer and the L2 normalisation.

    python scripts/export_onnx.py MODEL_DIR OUT.onnx [--opset 18] [--check]

The graph takes `input_ids` and `attention_mask` (int64, [batch, sequence], both axes
dynamic) and returns `token_embeddings` (float32, [batch, sequence, dim]): every position's
normalised embedding, i.e. what PyLate's encode() computes before it drops padding and
skiplist rows. BERT backbones get all-zero token_type_ids inside the graph. Tokenization
(prefix token, truncation, query expansion) stays outside; see scripts/onnx_colbert.py.

Needs PyLate, torch, onnx and onnxscript (pins in scripts/requirements-bench.txt). Loads the
model in float32 with sdpa attention, like the references, and exports with torch.onnx's
dynamo exporter. --check (needs onnxruntime) runs the exported graph on batches of different
shapes, one longer than a ModernBERT local window, and prints the largest difference from the
PyTorch module.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch


class ColBERTGraph(torch.nn.Module):
    """The part of PyLate's ColBERT that runs on tensors: backbone -> Dense chain -> L2 norm."""

    def __init__(self, model) -> None:
        super().__init__()
        self.backbone = model[0].auto_model
        self.dense = torch.nn.ModuleList(model[i] for i in range(1, len(model)))
        params = inspect.signature(self.backbone.forward).parameters
        self.token_types = "token_type_ids" in params

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            kwargs["token_type_ids"] = torch.zeros_like(input_ids)
        hidden = self.backbone(**kwargs, return_dict=True).last_hidden_state
        features = {"token_embeddings": hidden}
        for layer in self.dense:
            features = layer(features)
        return torch.nn.functional.normalize(features["token_embeddings"], p=2.0, dim=-1)


def load(model_dir: Path):
    from pylate import models

    model = models.ColBERT(
        str(model_dir),
        device="cpu",
        model_kwargs={"attn_implementation": "sdpa", "dtype": torch.float32},
    )
    model.eval()
    return model


def sample_inputs(model, texts: list[str], is_query: bool) -> dict[str, torch.Tensor]:
    features = model.tokenize(texts, is_query=is_query)
    return {k: features[k] for k in ("input_ids", "attention_mask")}


def export(model, out: Path, opset: int) -> None:
    graph = ColBERTGraph(model).eval()
    # Tracing example: two documents of different lengths (one padded), so no size is 1 and
    # the sequence axis is not specialised to a short constant.
    example = sample_inputs(
        model,
        ["a short document", "a longer document with " + "many more words " * 20],
        is_query=False,
    )
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=2, max=8192)
    shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
    out.parent.mkdir(parents=True, exist_ok=True)
    # Export to a temporary name in the same folder, then rename: a cached file is complete.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            program = torch.onnx.export(
                graph,
                (),
                kwargs=example,
                input_names=["input_ids", "attention_mask"],
                output_names=["token_embeddings"],
                dynamic_shapes=shapes,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                optimize=True,
                verbose=False,
            )
        program.save(tmp, external_data=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check(model, out: Path) -> float:
    import numpy as np
    import onnxruntime as ort

    graph = ColBERTGraph(model).eval()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst = 0.0
    cases = [
        # The long text is cut at document_length: longer than a ModernBERT local window.
        (["one", "two words here", "a third and much longer text " * 60], False),
        (["what is late interaction?", "expansion tokens"], True),
    ]
    for texts, is_query in cases:
        feats = sample_inputs(model, texts, is_query)
        with torch.no_grad():
            want = graph(**feats).numpy()
        got = session.run(None, {k: v.numpy() for k, v in feats.items()})[0]
        mask = feats["attention_mask"].numpy().astype(bool)
        if is_query:
            mask[:] = True  # expansion rows are part of a query's output
        worst = max(worst, float(np.abs(got - want)[mask].max()))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="PyLate model folder")
    ap.add_argument("out", type=Path, help="output .onnx file")
    ap.add_argument("--opset", type=int, default=18)
    ap.add_argument("--check", action="store_true", help="compare with PyTorch afterwards")
    args = ap.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = load(args.model)
    export(model, args.out, args.opset)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MiB, opset {args.opset})", file=sys.stderr)
    if args.check:
        try:
            worst = check(model, args.out)
        except ImportError as e:
            print(f"no check against torch ({e})", file=sys.stderr)
        else:
            print(f"max abs diff onnxruntime vs torch: {worst:.2e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`latebird.quantize`: an int8 or float16 copy of a model folder."""

from __future__ import annotations

import os
from typing import Literal, TypedDict, Union

from ._latebird import quantize as _quantize

PathLike = Union[str, "os.PathLike[str]"]


class QuantizeReport(TypedDict):
    """What `quantize` wrote."""

    quantized: int
    """Tensors stored in the new precision (weight matrices for int8, every float tensor for
    float16)."""
    bytes_before: int
    """Size of the backbone's weights file before, in bytes."""
    bytes_after: int
    """Size of the backbone's weights file after, in bytes."""
    copied: list[str]
    """Files copied unchanged (relative paths)."""
    skipped: list[str]
    """Files left out: float copies of the same weights (pytorch_model.bin, ...)."""


def quantize(
    model: PathLike, output: PathLike, precision: Literal["int8", "float16"] = "int8"
) -> QuantizeReport:
    """Writes to `output` (a new or empty folder) a copy of the PyLate model folder `model`:

    - `"int8"`: the backbone's linear-layer weights in int8, one float32 step per output
      channel; embeddings, norms, biases and the Dense head stay as they were. Every latebird
      front end loads the copy like any model folder and runs it in int8
      (`ColBERT(output).precision == "int8"`), with the same embeddings as
      `ColBERT(model, precision="int8")`.
    - `"float16"`: every float tensor of the backbone (embedding tables too) rounded to
      float16, half the download (for browsers); the copy loads in float32.

    The model is loaded first: a folder latebird cannot run is refused before anything is
    written, and nothing existing is overwritten.
    """
    report = _quantize(os.fspath(model), os.fspath(output), precision)
    return QuantizeReport(
        quantized=int(report["quantized"]),
        bytes_before=int(report["bytes_before"]),
        bytes_after=int(report["bytes_after"]),
        copied=list(report["copied"]),
        skipped=list(report["skipped"]),
    )

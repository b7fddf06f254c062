"""`latebird.quantize`: an int8 copy of a model folder."""

from __future__ import annotations

import os
from typing import Literal, TypedDict, Union

from ._latebird import quantize as _quantize

PathLike = Union[str, "os.PathLike[str]"]


class QuantizeReport(TypedDict):
    """What `quantize` wrote."""

    quantized: int
    """Weight matrices stored in int8."""
    bytes_before: int
    """Size of the backbone's weights file before, in bytes."""
    bytes_after: int
    """Size of the backbone's weights file after, in bytes."""
    copied: list[str]
    """Files copied unchanged (relative paths)."""
    skipped: list[str]
    """Files left out: float copies of the same weights (pytorch_model.bin, ...)."""


def quantize(
    model: PathLike, output: PathLike, precision: Literal["int8"] = "int8"
) -> QuantizeReport:
    """Writes to `output` (a new or empty folder) a copy of the PyLate model folder `model`
    whose backbone linear-layer weights are int8, one float32 step per output channel;
    embeddings, norms, biases and the Dense head stay as they were. Every latebird front end
    loads the copy like any model folder and runs it in int8 (`ColBERT(output).precision ==
    "int8"`), with the same embeddings as `ColBERT(model, precision="int8")`. The model is
    loaded first: a folder latebird cannot run is refused before anything is written, and
    nothing existing is overwritten.
    """
    report = _quantize(os.fspath(model), os.fspath(output), precision)
    return QuantizeReport(
        quantized=int(report["quantized"]),
        bytes_before=int(report["bytes_before"]),
        bytes_after=int(report["bytes_after"]),
        copied=list(report["copied"]),
        skipped=list(report["skipped"]),
    )

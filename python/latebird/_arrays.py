"""Conversion of user inputs (numpy arrays, torch tensors, nested lists) to what the native
functions take: C-contiguous, aligned 2-D float32 numpy arrays, copied only when needed.

- a float32 C-contiguous array (what `ColBERT.encode` and PyLate's `encode` return) is passed
  as it is: the native code reads its buffer;
- other float and integer dtypes are converted to float32 once; anything else (bool, complex,
  object, strings) is a `TypeError`;
- torch tensors are read through `detach().cpu()` (bfloat16 is widened to float32 first);
  torch is never imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._latebird import InvalidInputError

Matrix = npt.NDArray[np.float32]

_CONVERTIBLE = "fiu"


def invalid(name: str, message: str) -> InvalidInputError:
    """An `InvalidInputError` worded like the engine's: ``invalid argument `name`: message``."""
    return InvalidInputError(f"invalid argument `{name}`: {message}")


def _from_torch(x: Any) -> Any:
    module = type(x).__module__ or ""
    if module.startswith("torch") and hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
    return x


def is_array_like(x: Any) -> bool:
    """Anything numpy converts as a whole (arrays, tensors), as opposed to a Python list."""
    return isinstance(x, np.ndarray) or (
        not isinstance(x, (list, tuple)) and hasattr(_from_torch(x), "__array__")
    )


def to_array(x: Any, name: str, what: str, kinds: str = _CONVERTIBLE) -> np.ndarray:
    """`x` as a numpy array whose dtype kind is one of `kinds` (not yet float32)."""
    x = _from_torch(x)
    if isinstance(x, (str, bytes, bytearray, dict)) or x is None:
        raise TypeError(f"`{name}` is {type(x).__name__}; expected {what}")
    if isinstance(x, np.ndarray):
        array = x
    elif isinstance(x, (list, tuple)) or hasattr(x, "__array__"):
        try:
            array = np.asarray(x)
        except ValueError:
            raise invalid(
                name, f"is ragged (rows or matrices of different lengths); expected {what}"
            ) from None
        except TypeError as e:
            raise TypeError(f"`{name}` cannot be read as an array ({e}); expected {what}") from None
    else:
        raise TypeError(f"`{name}` is {type(x).__name__}; expected {what}")
    if array.dtype == object:
        raise invalid(name, f"is ragged or holds non-numbers (an object array); expected {what}")
    if array.dtype.kind not in kinds:
        if kinds == _CONVERTIBLE:
            expected = "float32 (other float and integer dtypes are converted)"
        else:
            expected = what
        raise TypeError(f"`{name}` has dtype {array.dtype}; expected {expected}")
    return array


def float32(array: np.ndarray) -> np.ndarray:
    """C-contiguous aligned float32: the same array when it already is, else one copy."""
    return np.require(array, dtype=np.float32, requirements=["C", "A"])


def as_matrix(x: Any, name: str) -> Matrix:
    """One `[n_tokens, dim]` matrix."""
    what = "a 2-D [n_tokens, dim] float32 array"
    array = to_array(x, name, what)
    if array.ndim != 2:
        raise invalid(name, f"has shape {tuple(array.shape)}; expected {what}")
    return float32(array)


def _mask_rows(mask: Any, name: str, rows: int, padded: bool) -> np.ndarray | None:
    """A 0/1 mask of one matrix as a boolean vector of length `rows` (None: keep every row)."""
    m = to_array(mask, name, "a 1-D mask of 0/1 values", _CONVERTIBLE + "b")
    if m.ndim != 1:
        raise invalid(name, f"has shape {tuple(m.shape)}; expected a 1-D mask of 0/1 values")
    if m.size and not np.isin(m, (0, 1)).all():
        raise invalid(name, "holds values other than 0 and 1; expected a 0/1 mask")
    keep = m != 0
    if len(keep) > rows and not padded and not keep[rows:].any():
        keep = keep[:rows]  # a padded mask for an unpadded matrix: the tail is 0
    if len(keep) != rows:
        raise invalid(name, f"has {len(keep)} entries; expected one per row ({rows})")
    return None if keep.all() else keep


def _apply(matrix: Matrix, keep: np.ndarray | None, name: str, mask_name: str) -> Matrix:
    if keep is None:
        return matrix
    n = int(keep.sum())
    if n == 0:
        raise invalid(name, f"every row is masked out by `{mask_name}`; expected at least one row")
    if keep[:n].all():
        return matrix[:n]  # a prefix (the usual padding mask): a view, still C-contiguous
    return np.ascontiguousarray(matrix[keep])


def as_matrices(x: Any, name: str, mask: Any = None, mask_name: str = "mask") -> list[Matrix]:
    """A list of `[n_tokens, dim]` matrices from a list (or tuple) of 2-D arrays, or from a
    padded 3-D `[n, n_tokens, dim]` array; `mask` (`[n, n_tokens]` or one 1-D mask per
    matrix) drops the rows where it is 0."""
    what = "a list of 2-D [n_tokens, dim] arrays or a 3-D [n, n_tokens, dim] array"
    x = _from_torch(x)
    if is_array_like(x):
        array = to_array(x, name, what)
        if array.ndim == 2:
            raise invalid(
                name,
                f"is one 2-D matrix of shape {tuple(array.shape)}; expected {what} "
                "(wrap a single matrix in a list)",
            )
        if array.ndim != 3:
            raise invalid(name, f"has shape {tuple(array.shape)}; expected {what}")
        if array.dtype != np.float32:
            array = array.astype(np.float32)  # one conversion, in C order
        # Each matrix on its own: a view when its rows are contiguous (also in a sliced array).
        items: list[Matrix] = [float32(a) for a in array]
        padded = True
    elif isinstance(x, Sequence) and not isinstance(x, (str, bytes, bytearray)):
        items = [as_matrix(item, f"{name}[{i}]") for i, item in enumerate(x)]
        padded = False
    else:
        raise TypeError(f"`{name}` is {type(x).__name__}; expected {what}")
    if mask is None:
        return items
    mask = _from_torch(mask)
    if is_array_like(mask):
        masks = to_array(mask, mask_name, "a [n, n_tokens] 0/1 mask", _CONVERTIBLE + "b")
        if masks.ndim != 2:
            raise invalid(
                mask_name, f"has shape {tuple(masks.shape)}; expected a [n, n_tokens] 0/1 mask"
            )
    elif isinstance(mask, Sequence) and not isinstance(mask, (str, bytes, bytearray)):
        masks = mask  # type: ignore[assignment]
    else:
        raise TypeError(f"`{mask_name}` is {type(mask).__name__}; expected a [n, n_tokens] mask")
    if len(masks) != len(items):
        raise invalid(
            mask_name, f"has {len(masks)} masks; expected one per matrix of `{name}` ({len(items)})"
        )
    return [
        _apply(
            item,
            _mask_rows(m, f"{mask_name}[{i}]", item.shape[0], padded),
            f"{name}[{i}]",
            f"{mask_name}[{i}]",
        )
        for i, (item, m) in enumerate(zip(items, masks))
    ]


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An `int` (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise invalid(name, f"{value!r}; expected an integer >= {minimum}")
    return int(value)

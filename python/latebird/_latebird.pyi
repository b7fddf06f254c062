"""Type stubs of the native module (crates/py)."""

from collections.abc import Callable
from os import PathLike

import numpy as np
import numpy.typing as npt

__version__: str

class LatebirdError(Exception):
    """Base class of every error latebird raises."""

class ModelLoadError(LatebirdError):
    """The model folder is missing a file, or a file is malformed or does not match the config."""

class InvalidInputError(LatebirdError):
    """An argument or input text is out of range or inconsistent."""

class Model:
    def __init__(
        self,
        path: str | PathLike[str],
        *,
        device: str = "cpu",
        query_length: int | None = None,
        document_length: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        attend_to_expansion_tokens: bool | None = None,
        do_query_expansion: bool | None = None,
        skiplist_words: list[str] | None = None,
    ) -> None: ...
    def encode(
        self,
        texts: list[str],
        is_query: bool,
        batch_size: int,
        progress: Callable[[int], object] | None = None,
    ) -> list[npt.NDArray[np.float32]]: ...
    @property
    def dim(self) -> int: ...
    @property
    def settings(self) -> dict[str, object]: ...
    def tokenize(self, text: str, is_query: bool) -> tuple[list[int], list[int]]: ...

"""Type stubs of the native module (crates/py)."""

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "DeviceError",
    "EntryNotFoundError",
    "HubError",
    "InvalidInputError",
    "LatebirdError",
    "Model",
    "ModelLoadError",
    "NotCachedError",
    "RepositoryNotFoundError",
    "RevisionNotFoundError",
    "__version__",
    "_panic_for_tests",
    "build_features",
    "handle_request",
    "hub_download",
    "lambda_model",
    "maxsim",
    "pool_hierarchical",
    "quantize",
    "refuse_request",
    "request_limits",
    "rerank",
    "scores",
    "top_k",
]

__version__: str
# The backends this build has: "cpu", then any of "mkl", "accelerate", "cuda", "metal".
build_features: list[str]

class LatebirdError(Exception):
    """Base class of every error latebird raises."""

class ModelLoadError(LatebirdError):
    """The model folder is missing a file, or a file is malformed or does not match the config."""

class InvalidInputError(LatebirdError):
    """An argument or input text is out of range or inconsistent."""

class DeviceError(LatebirdError):
    """The device asked for is missing from this build (a Cargo feature) or from this machine
    (a GPU, a driver)."""

class HubError(ModelLoadError):
    """The model could not be fetched from the hub (network failure, HTTP error, bad answer)."""

class RepositoryNotFoundError(HubError):
    """The hub has no such repository, or hides a private or gated one from this token."""

class RevisionNotFoundError(HubError):
    """The repository has no such branch, tag or commit."""

class EntryNotFoundError(HubError):
    """A file of the model is missing on the hub, or the repository is not a PyLate model."""

class NotCachedError(HubError):
    """Offline (HF_HUB_OFFLINE=1 or hub unreachable) and the model is not in the cache."""

def hub_download(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | PathLike[str] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    offline: bool | None = None,
    timeout: float | None = None,
) -> str:
    """Fetches a PyLate model from the hub into the cache; returns its snapshot folder."""

@final
class Model:
    # The keyword arguments are the engine's settings overrides (latebird::Overrides,
    # crates/core/src/overrides.rs), taken as `**overrides` and checked by the engine: an
    # unknown one is an InvalidInputError listing the accepted names.
    def __new__(
        cls,
        path: str | PathLike[str],
        *,
        device: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        attend_to_expansion_tokens: bool | None = None,
        do_query_expansion: bool | None = None,
        skiplist_words: Sequence[str] | None = None,
        batch_size: int | None = None,
        precision: Literal["float32", "bfloat16", "int8", "float16"] | None = None,
    ) -> Self: ...
    def encode(
        self,
        texts: list[str],
        is_query: bool,
        batch_size: int,
        pool_factor: int | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> list[npt.NDArray[np.float32]]: ...
    @property
    def device(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def precision(self) -> Literal["float32", "bfloat16", "int8", "float16"]: ...
    @property
    def settings(self) -> dict[str, object]: ...
    def tokenize(self, text: str, is_query: bool) -> tuple[list[int], list[int]]: ...

# Scoring and pooling. Every matrix is a C-contiguous, aligned 2-D float32 array, read in place
# with the GIL released (latebird.scores, .rank and .pooling convert other inputs).

def scores(
    queries: Sequence[npt.NDArray[np.float32]], documents: Sequence[npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32]:
    """MaxSim scores `[len(queries), len(documents)]`."""

def maxsim(query: npt.NDArray[np.float32], document: npt.NDArray[np.float32]) -> float:
    """MaxSim score of one pair."""

def rerank(
    queries: Sequence[npt.NDArray[np.float32]],
    documents: Sequence[Sequence[npt.NDArray[np.float32]]],
) -> list[list[tuple[int, float]]]:
    """Per query, (candidate position, score) best first, stable for ties."""

def top_k(
    query: npt.NDArray[np.float32], documents: Sequence[npt.NDArray[np.float32]], k: int
) -> list[tuple[int, float]]:
    """The k best (document position, score), best first, stable for ties."""

def pool_hierarchical(
    documents: Sequence[npt.NDArray[np.float32]], pool_factor: int, protected_tokens: int
) -> list[npt.NDArray[np.float32]]:
    """Hierarchical token pooling of each document."""

def quantize(
    model: str | PathLike[str], output: str | PathLike[str], precision: str
) -> dict[str, Any]:
    """Writes an int8 or float16 copy of the model folder `model` to `output` (a new or empty
    folder)."""

# The AWS Lambda contract (crates/service), for latebird.lambda_handler.

def lambda_model() -> tuple[str, Model]:
    """(folder, model): the Lambda function's model from LATEBIRD_MODEL and LATEBIRD_SETTINGS."""

def request_limits() -> tuple[int, int]:
    """(max_texts, max_chars) from LATEBIRD_MAX_TEXTS and LATEBIRD_MAX_CHARS (1024, 1000000)."""

def handle_request(
    model: Model, event_json: str, max_texts: int, max_chars: int
) -> tuple[int, str]:
    """Answers one Lambda event (its JSON text) as the Rust function does: (status, JSON)."""

def refuse_request(message: str) -> tuple[int, str]:
    """The 400 answer, as JSON text, to an event that cannot be written as JSON."""

def _panic_for_tests(message: str) -> None:
    """Panics inside the engine through the entry points' guard (tests only)."""

"""`latebird.ColBERT`: PyLate's `models.ColBERT` names and defaults, without PyTorch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, Union, overload

import numpy as np
import numpy.typing as npt

from ._arrays import positive_int
from ._latebird import InvalidInputError, Model
from ._progress import ProgressBar

Matrix = npt.NDArray[np.float32]
PathLike = Union[str, "os.PathLike[str]"]


def _check_texts(sentences: object) -> list[str]:
    if isinstance(sentences, str):
        return [sentences]
    if isinstance(sentences, (bytes, bytearray)) or not isinstance(sentences, Sequence):
        raise TypeError(f"sentences must be a str or a list of str, got {type(sentences).__name__}")
    texts = list(sentences)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"sentences[{i}] is {type(text).__name__}; expected str")
    return texts


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return 0 < len(parts) <= 2 and all(parts) and not name.startswith((".", "~"))


def _resolve_model(
    model_name_or_path: PathLike,
    revision: str | None,
    cache_folder: PathLike | None,
    token: str | None,
    local_files_only: bool | None,
) -> str:
    """A local folder as it is; otherwise a hub id, fetched into the cache (huggingface_hub's
    layout) and returned as its snapshot folder."""
    path = os.fspath(model_name_or_path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path) or not _looks_like_repo_id(path):
        from ._latebird import ModelLoadError

        raise ModelLoadError(
            f"{path}: not a local model folder nor a hub model id; expected a directory "
            "holding a PyLate model (modules.json, config.json, model.safetensors, "
            'tokenizer.json, ...) or an id such as "org/name"'
        )
    from ._latebird import hub_download

    return os.fspath(
        hub_download(
            path,
            revision,
            cache_dir=os.fspath(cache_folder) if cache_folder is not None else None,
            token=token,
            offline=True if local_files_only else None,
        )
    )


class ColBERT:
    """A PyLate ColBERT model, loaded for inference from a local folder or a hub id.

    Arguments mirror `pylate.models.ColBERT`; `None` keeps what the model folder's
    `config_sentence_transformers.json` says. `device` is "cpu" (the default), "cuda",
    "cuda:N", "mps" or "metal": one this build (see `latebird.build_features`) or this machine
    lacks raises `DeviceError`, never a silent fall back to the CPU. A `model_name_or_path`
    that is not a folder is a hub id ("org/name"): its PyLate files are fetched at `revision`
    (branch, tag or commit; default "main") from HF_ENDPOINT into the huggingface_hub cache
    (`cache_folder`, else HF_HUB_CACHE or HF_HOME/hub), with `token` (else HF_TOKEN) for
    private repositories.
    `local_files_only=True` (or HF_HUB_OFFLINE=1) uses the cache only.
    """

    def __init__(
        self,
        model_name_or_path: PathLike,
        *,
        device: str = "cpu",
        query_length: int | None = None,
        document_length: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        attend_to_expansion_tokens: bool | None = None,
        do_query_expansion: bool | None = None,
        skiplist_words: list[str] | None = None,
        precision: Literal["float32", "bfloat16", "int8", "float16"] | None = None,
        revision: str | None = None,
        cache_folder: PathLike | None = None,
        token: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        path = _resolve_model(model_name_or_path, revision, cache_folder, token, local_files_only)
        if skiplist_words is not None:
            skiplist_words = _check_texts(skiplist_words)
        self._model = Model(
            path,
            device=device,
            query_length=query_length,
            document_length=document_length,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            attend_to_expansion_tokens=attend_to_expansion_tokens,
            do_query_expansion=do_query_expansion,
            skiplist_words=skiplist_words,
            precision=precision,
        )
        self.model_name_or_path = path

    @property
    def device(self) -> str:
        """The device the model runs on, by its canonical name: `"cpu"`, `"cuda:N"` or
        `"metal:N"` (`"mps"` is `"metal:0"`)."""
        return self._model.device

    @property
    def precision(self) -> Literal["float32", "bfloat16", "int8", "float16"]:
        """The arithmetic of the linear layers: the `precision` given (`"bfloat16"` rounds
        weights and activations to bf16 and sums in float32; `"int8"` quantizes them), else the
        one the model folder stores (`"int8"` for a folder written by `latebird.quantize`)."""
        return self._model.precision

    # The effective settings, read back from the engine.
    @property
    def query_prefix(self) -> str:
        return str(self._model.settings["query_prefix"])

    @property
    def document_prefix(self) -> str:
        return str(self._model.settings["document_prefix"])

    @property
    def query_length(self) -> int:
        return int(self._model.settings["query_length"])  # type: ignore[call-overload]

    @property
    def document_length(self) -> int:
        return int(self._model.settings["document_length"])  # type: ignore[call-overload]

    @property
    def do_query_expansion(self) -> bool:
        return bool(self._model.settings["do_query_expansion"])

    @property
    def attend_to_expansion_tokens(self) -> bool:
        return bool(self._model.settings["attend_to_expansion_tokens"])

    @property
    def skiplist_words(self) -> list[str]:
        return list(self._model.settings["skiplist_words"])  # type: ignore[call-overload]

    @property
    def embedding_dim(self) -> int:
        """Width of each token embedding."""
        return self._model.dim

    def get_sentence_embedding_dimension(self) -> int:
        """Width of each token embedding (sentence-transformers' name)."""
        return self._model.dim

    def tokenize(self, text: str, is_query: bool = True) -> tuple[list[int], list[int]]:
        """Token ids and attention mask of `text`, exactly as fed to the model."""
        return self._model.tokenize(_check_texts(text)[0], is_query)

    @overload
    def encode(
        self,
        sentences: str,
        is_query: bool = ...,
        batch_size: int = ...,
        pool_factor: int = ...,
        padding: bool = ...,
        show_progress_bar: bool | None = ...,
        convert_to_numpy: bool = ...,
        convert_to_tensor: bool = ...,
    ) -> Matrix: ...

    @overload
    def encode(
        self,
        sentences: Sequence[str],
        is_query: bool = ...,
        batch_size: int = ...,
        pool_factor: int = ...,
        padding: bool = ...,
        show_progress_bar: bool | None = ...,
        convert_to_numpy: bool = ...,
        convert_to_tensor: bool = ...,
    ) -> list[Matrix] | Matrix: ...

    def encode(
        self,
        sentences: str | Sequence[str],
        is_query: bool = True,
        batch_size: int = 32,
        pool_factor: int = 1,
        padding: bool = False,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> list[Matrix] | Matrix:
        """Encodes texts into one float32 `[n_tokens, dim]` array each, in input order.

        A single string gives a single array. `padding=True` gives one
        `[n_texts, max_tokens, dim]` array, shorter texts padded with zero rows.
        `pool_factor > 1` pools document tokens hierarchically as PyLate does; queries are
        never pooled, and the engine refuses `pool_factor > 1` with `is_query=True` (an
        `InvalidInputError`, as in every latebird front end; PyLate ignores it).
        """
        single = isinstance(sentences, str)
        texts = _check_texts(sentences)
        batch_size = positive_int(batch_size, "batch_size")
        pool_factor = positive_int(pool_factor, "pool_factor")
        if not convert_to_numpy or convert_to_tensor:
            raise InvalidInputError(
                "latebird returns numpy arrays only (no PyTorch); "
                "expected convert_to_numpy=True and convert_to_tensor=False"
            )
        bar = None
        if ProgressBar.wanted(show_progress_bar, len(texts), batch_size):
            bar = ProgressBar(len(texts), "Encoding queries" if is_query else "Encoding documents")
        try:
            outputs = self._model.encode(
                texts, is_query, batch_size, pool_factor, bar.update if bar else None
            )
        finally:
            if bar is not None:
                bar.close()
        if padding:
            return _pad(outputs, self._model.dim)
        if single:
            return outputs[0]
        return outputs

    def similarity(
        self,
        queries_embeddings: object,
        documents_embeddings: object,
    ) -> Matrix:
        """MaxSim score of every query against every document (sentence-transformers' method
        name; for a ColBERT model the similarity is MaxSim): `latebird.scores.colbert_scores`.

        Returns a float32 array `[n_queries, n_documents]`.
        """
        from .scores import colbert_scores

        return colbert_scores(queries_embeddings, documents_embeddings)

    @staticmethod
    def pool_embeddings_hierarchical(
        documents_embeddings: object, pool_factor: int = 1, protected_tokens: int = 1
    ) -> list[Matrix]:
        """PyLate's method of the same name: `latebird.pooling.pool_embeddings_hierarchical`."""
        from .pooling import pool_embeddings_hierarchical

        return pool_embeddings_hierarchical(documents_embeddings, pool_factor, protected_tokens)


def _pad(outputs: list[Matrix], dim: int) -> Matrix:
    longest = max((o.shape[0] for o in outputs), default=0)
    padded = np.zeros((len(outputs), longest, dim), dtype=np.float32)
    for i, o in enumerate(outputs):
        padded[i, : o.shape[0]] = o
    return padded

"""latebird: PyLate-exact late-interaction (ColBERT) encoders without PyTorch.

>>> from latebird import ColBERT
>>> model = ColBERT("path/to/pylate-model")
>>> queries = model.encode(["what is late interaction?"], is_query=True)
>>> documents = model.encode(["ColBERT scores with MaxSim."], is_query=False)
>>> scores = model.similarity(queries, documents)  # [1, 1] MaxSim scores

Scoring, ranking and pooling on embeddings: `latebird.scores` (`colbert_scores`, `maxsim`),
`latebird.rank` (`rerank`, `top_k`), `latebird.pooling` (`pool_embeddings_hierarchical`).
`latebird.quantize(model, output)` writes an int8 copy of a model folder.
"""

from . import pooling, rank, scores
from ._latebird import (
    DeviceError,
    EntryNotFoundError,
    HubError,
    InvalidInputError,
    LatebirdError,
    ModelLoadError,
    NotCachedError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    __version__,
    build_features,
    hub_download,
)
from .colbert import ColBERT
from .quantize import quantize

__all__ = [
    "ColBERT",
    "DeviceError",
    "EntryNotFoundError",
    "HubError",
    "InvalidInputError",
    "LatebirdError",
    "ModelLoadError",
    "NotCachedError",
    "RepositoryNotFoundError",
    "RevisionNotFoundError",
    "__version__",
    "build_features",
    "hub_download",
    "pooling",
    "quantize",
    "rank",
    "scores",
]

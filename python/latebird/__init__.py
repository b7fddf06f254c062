"""latebird: PyLate-exact late-interaction (ColBERT) encoders without PyTorch.

>>> from latebird import ColBERT
>>> model = ColBERT("path/to/pylate-model")
>>> queries = model.encode(["what is late interaction?"], is_query=True)
>>> documents = model.encode(["ColBERT scores with MaxSim."], is_query=False)
"""

from ._latebird import InvalidInputError, LatebirdError, ModelLoadError, __version__
from .colbert import ColBERT

__all__ = [
    "ColBERT",
    "InvalidInputError",
    "LatebirdError",
    "ModelLoadError",
    "__version__",
]

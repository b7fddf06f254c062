"""Imported by the Ray workers of test_ray.py (tests/python is put on their PYTHONPATH)."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import ray
from latebird.ray import Encoder


class ProbeEncoder(Encoder):
    """latebird.ray.Encoder that also says where it ran and with how many engine threads."""

    def __call__(self, batch: Any) -> Any:
        out = super().__call__(batch)
        node = ray.get_runtime_context().get_node_id()
        threads = os.environ.get("RAYON_NUM_THREADS", "")
        out = out.append_column("node", pa.array([node] * out.num_rows))
        return out.append_column("threads", pa.array([threads] * out.num_rows))

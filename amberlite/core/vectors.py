"""Vector-valued features: their dimension, a column as a matrix, unit rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from amberlite.errors import ReplicaError


def is_vector(output: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(output) and pa.types.is_floating(output.value_type)


def vector_dim(output: pa.DataType) -> int:
    """The dimension of a float-vector feature type, else ReplicaError."""
    if is_vector(output):
        return output.list_size
    raise ReplicaError(
        f"only fixed-size float vectors can be searched or replicated to a vector index, "
        f"not {output}"
    )


def as_matrix(values: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """A fixed-size-list column as a contiguous (n, dim) float32 matrix (no Python loop)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return np.zeros((0, dim), np.float32)
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(len(values), dim), dtype=np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): cosine is then the dot product."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)

"""Annotations: typed temporal and spatial records from models and people.

People and applications write through :class:`~amberlite.annotations.api.Annotations`
(``store.annotations``) into catalog tables, one transaction per change with its history;
annotators write whole runs as Parquet files committed atomically
(:mod:`amberlite.annotations.runs`); :mod:`amberlite.annotations.read` reads both as one
DuckDB relation for the Python API and for AQL.
"""

from amberlite.annotations.api import Annotations

__all__ = ["Annotations"]

"""The training-data path: memoized values streamed from Parquet into torch tensors.

``store.dataset("embedding")`` computes what the request needs but the store lacks, then
returns a :class:`FeatureDataset`, a torch ``IterableDataset`` over the feature's committed
Parquet files. Iterating reads Arrow record batches (``ParquetFile.iter_batches``) in a
background thread, ``prefetch`` batches ahead, and yields dicts of exactly ``batch_size`` rows
(the last one shorter unless ``drop_last``; ``ids=False`` leaves out the id lists)::

    {"entity_id": [str, ...], "asset_id": [str, ...], "embedding": tensor(B, 512)}

Fixed-size lists of numbers (nested too) become ``(B, d1, d2, ...)`` tensors, numbers and
booleans ``(B,)`` tensors; other types stay Python lists. Use it with
``DataLoader(ds, batch_size=None, num_workers=N)`` (the batch size is the dataset's; a
DataLoader with a ``batch_size`` would stack batches into a transposed tensor, so collating a
:class:`Batch` raises a TypeError saying so; ``len(ds)`` raises a TypeError too, as the rows an
asset scope keeps are known only by reading: ``ds.num_rows`` counts the rows of the row groups
read). The unit of work is one row group of one
file, and units are split across ``shard(rank, world_size)`` (data-parallel processes) and
then across DataLoader workers by worker id, so every row is read exactly once per epoch.
An asset scope skips row groups by their asset_id statistics and filters the rest.
``to_ray()`` gives a Ray Dataset over the same files.

``store.dataset("SELECT id, asset, shot_embedding, brightness FROM shots WHERE ...")`` takes an
AQL query instead: the query is planned and run as ``store.query`` would (computing the
features it needs for the entities that pass its filters), its result streamed out of DuckDB
into ``<store>/datasets/<hash>.parquet`` in row groups of ``QUERY_ROW_GROUP`` rows (written
aside and renamed), and that file is streamed like a feature's. Batches are dicts of the
selected columns by name. The file is keyed by the query text and the catalog's state, so
making the same dataset again on an unchanged store reuses it.

The file list is fixed when the dataset is made: compacting the feature while a training
run reads it retires those files (make a new dataset after ``store.compact``).
"""

from __future__ import annotations

import dataclasses
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate_fn_map

from amberlite.context import context_of
from amberlite.errors import ResolveError
from amberlite.memo.key import memo_key
from amberlite.memo.store import ASSET_ID, ENTITY_ID, VALUE

_END = object()
QUERY_ROW_GROUP = 8192  # rows per row group of a query dataset (its unit of sharding)


class Batch(dict):
    """One batch the dataset yields: a dict of columns that DataLoader's collation refuses."""


def _refuse_collate(batch, *, collate_fn_map=None):
    raise TypeError(
        "store.dataset(...) already yields batches (set their size with "
        "store.dataset(..., batch_size=N)); use DataLoader(ds, batch_size=None)"
    )


# torch's documented extension point: default_collate looks a batch's type up here first.
default_collate_fn_map[Batch] = _refuse_collate


@dataclass(frozen=True)
class _Unit:
    """One row group of one file: the unit shards and workers split."""

    path: str
    row_group: int
    rows: int


@dataclass
class _Failure:
    error: BaseException


def to_torch(arr: pa.Array | pa.ChunkedArray) -> torch.Tensor | list[Any]:
    """A column as a tensor: (fixed-size lists of)* numbers -> (n, d1, ...); else a list."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    shape = [len(arr)]
    flat = arr
    while pa.types.is_fixed_size_list(flat.type):
        size = flat.type.list_size
        shape.append(size)
        flat = flat.values.slice(flat.offset * size, len(flat) * size)
    if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)) and not (
        pa.types.is_boolean(flat.type)
    ):
        return arr.to_pylist()
    if flat.null_count and len(shape) > 1:
        return arr.to_pylist()  # a null element inside a vector has no tensor form
    values = flat.to_numpy(zero_copy_only=False)
    if not values.flags.writeable:
        values = values.copy()  # torch wants memory it may write; the copy is cheap
    return torch.from_numpy(values.reshape(shape))


@dataclass
class FeatureDataset(IterableDataset):
    """Stream one feature's stored values as batches of torch tensors (see module doc)."""

    name: str
    files: list[str]
    asset_ids: frozenset[str] | None = None
    batch_size: int = 256
    prefetch: int = 4
    drop_last: bool = False
    shuffle: bool = False
    seed: int = 0
    ids: bool = True
    shard_index: int = 0
    shard_count: int = 1
    columns: tuple[str, ...] | None = None  # a query dataset: the result's columns
    _epoch: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.prefetch < 1:
            raise ResolveError("dataset batch_size and prefetch must be at least 1")
        if not 0 <= self.shard_index < self.shard_count:
            raise ResolveError(f"shard {self.shard_index} of {self.shard_count} does not exist")
        self._units = self._list_units()

    # -- planning -----------------------------------------------------------------------------
    def _list_units(self) -> list[_Unit]:
        units = []
        for path in self.files:
            meta = pq.ParquetFile(path).metadata
            col = meta.schema.names.index(ASSET_ID) if self.asset_ids is not None else -1
            for rg in range(meta.num_row_groups):
                group = meta.row_group(rg)
                if col >= 0 and not self._may_hold(group.column(col)):
                    continue
                units.append(_Unit(path, rg, group.num_rows))
        return units

    def _may_hold(self, column) -> bool:
        stats = column.statistics
        if stats is None or not stats.has_min_max:
            return True
        return any(stats.min <= a <= stats.max for a in self.asset_ids)

    @property
    def num_rows(self) -> int:
        """Rows in the row groups this dataset reads (before an asset filter)."""
        return sum(u.rows for u in self._units)

    def __bool__(self) -> bool:  # ``if ds:`` must not call __len__
        return True

    def __len__(self) -> int:
        raise TypeError(
            "a FeatureDataset streams batches and has no len(): the rows an asset scope keeps "
            "are known only by reading; ds.num_rows counts the rows of the row groups it reads"
        )

    def shard(self, index: int, count: int) -> FeatureDataset:
        """The part of this dataset one of ``count`` data-parallel processes reads."""
        return dataclasses.replace(self, shard_index=index, shard_count=count)

    def set_epoch(self, epoch: int) -> None:
        """With ``shuffle``, each epoch visits the row groups in another order."""
        self._epoch = epoch

    def _my_units(self) -> list[_Unit]:
        units = list(self._units)
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self._epoch).shuffle(units)
        units = units[self.shard_index :: self.shard_count]
        info = get_worker_info()
        if info is not None:
            units = units[info.id :: info.num_workers]
        return units

    # -- reading ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        units = self._my_units()
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce, args=(units, out, stop), daemon=True, name="amberlite-prefetch"
        )
        thread.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    def _produce(self, units: list[_Unit], out: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for batch in self._batches(units):
                if not put(self._convert(batch)):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consuming thread
            put(_Failure(e))

    def _batches(self, units: list[_Unit]) -> Iterator[pa.RecordBatch]:
        """Record batches of exactly batch_size rows across row-group boundaries."""
        wanted = pa.array(sorted(self.asset_ids)) if self.asset_ids is not None else None
        columns = None if self.ids or wanted is not None else self._value_columns()
        held: list[pa.RecordBatch] = []
        n = 0
        for unit in units:
            pf = pq.ParquetFile(unit.path)
            for rb in pf.iter_batches(
                batch_size=self.batch_size, row_groups=[unit.row_group], columns=columns
            ):
                if wanted is not None:
                    rb = rb.filter(pc.is_in(rb.column(ASSET_ID), value_set=wanted))
                if not rb.num_rows:
                    continue
                if not held and rb.num_rows == self.batch_size:
                    yield rb
                    continue
                held.append(rb)
                n += rb.num_rows
                while n >= self.batch_size:
                    table = pa.Table.from_batches(held)
                    yield table.slice(0, self.batch_size).combine_chunks().to_batches()[0]
                    rest = table.slice(self.batch_size)
                    held = rest.combine_chunks().to_batches() if rest.num_rows else []
                    n = rest.num_rows
        if held and not self.drop_last:
            yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]

    def _value_columns(self) -> list[str]:
        if self.columns is None:
            return [VALUE]
        schema = pq.read_schema(self.files[0]) if self.files else pa.schema([])
        return [f.name for f in schema if not _is_text(f.type)]

    def _convert(self, rb: pa.RecordBatch) -> Batch:
        if self.columns is not None:
            return Batch(
                {
                    name: to_torch(rb.column(name))
                    for name in rb.schema.names
                    if self.ids or not _is_text(rb.schema.field(name).type)
                }
            )
        if not self.ids:
            return Batch({self.name: to_torch(rb.column(VALUE))})
        return Batch(
            {
                ENTITY_ID: rb.column(ENTITY_ID).to_pylist(),
                ASSET_ID: rb.column(ASSET_ID).to_pylist(),
                self.name: to_torch(rb.column(VALUE)),
            }
        )

    # -- Ray ----------------------------------------------------------------------------------
    def to_ray(self):
        """A Ray Dataset over the same files (value column named after the feature)."""
        import ray.data

        if not self.files:
            raise ResolveError(f"{self.name}: no stored values to read")
        for attempt in range(3):
            try:
                ds = ray.data.read_parquet(self.files)
                break
            except ImportError:
                # Ray probes fsspec's HTTP filesystem; without aiohttp that import fails, and
                # a concurrent attempt can surface as ImportError rather than the
                # ModuleNotFoundError Ray expects. Local paths never need it: try again.
                if attempt == 2:
                    raise
        if self.asset_ids is not None:
            from ray.data.expressions import col

            ds = ds.filter(expr=col(ASSET_ID).is_in(sorted(self.asset_ids)))
        return ds if self.columns is not None else ds.rename_columns({VALUE: self.name})


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_query(text: str) -> bool:
    words = text.split(None, 1)
    return bool(words) and words[0].upper() in {"SELECT", "EXPLAIN", "SHOW", "DESCRIBE", "MATCH"}


def dataset(
    store: Any,
    feature: str,
    assets: Sequence[str] | str | None = None,
    *,
    version: int | None = None,
    params: dict[str, Any] | None = None,
    compute: bool = True,
    executor: Any = None,
    progress: bool | None = None,
    **options: Any,
) -> FeatureDataset:
    """Make a :class:`FeatureDataset` of ``feature`` (``name`` or ``name@version``) over an
    asset scope, or of an AQL ``SELECT`` query (then ``assets``, ``version`` and ``params``
    belong in the query text), computing missing values first unless ``compute=False``.
    ``options`` are FeatureDataset fields: batch_size, prefetch, drop_last, shuffle, seed, ids
    (False: yield only the value tensors, and skip reading the id / text columns)."""
    if not isinstance(feature, str):
        raise ResolveError(f"dataset takes a feature name or a query, not {type(feature).__name__}")
    unknown = set(options) - {"batch_size", "prefetch", "drop_last", "shuffle", "seed", "ids"}
    if unknown:
        raise ResolveError(f"dataset has no option {sorted(unknown)[0]!r}")
    if _is_query(feature):
        if assets is not None or version is not None or params is not None:
            raise ResolveError("a query dataset takes its scope from the query (OF, @v, (k=v))")
        files, names = query_files(store, feature, compute)
        return FeatureDataset("query", files, None, columns=names, **options)
    if any(c.isspace() for c in feature.strip()):
        raise ResolveError(
            f"dataset takes a feature name (name or name@version) or a SELECT query, "
            f"not {feature.strip()[:40]!r}"
        )
    ctx = context_of(store)
    spec = ctx.feature(feature.strip(), version)
    asset_ids = ctx.resolve_assets(assets)
    if compute and not ctx.resolver.is_complete(spec, params, asset_ids):
        ctx.resolver.materialize(spec, params, asset_ids, executor=executor, progress=progress)
    files = ctx.memo.files(memo_key(spec, params))
    scope = frozenset(asset_ids) if asset_ids is not None else None
    return FeatureDataset(spec.name, files, scope, **options)


def query_files(store: Any, text: str, compute: bool = True) -> tuple[list[str], tuple[str, ...]]:
    """Run a SELECT (computing what it needs unless ``compute=False``) into a Parquet file
    under ``<store>/datasets``, reused while the catalog is unchanged; returns ``([path],
    column names)``."""
    import hashlib
    import os
    import uuid

    from amberlite.errors import AqlError
    from amberlite.exec.scope import Reader, duck_errors, prepare
    from amberlite.exec.select import compile_select
    from amberlite.memo.store import fsync_path
    from amberlite.plan import logical as L
    from amberlite.query import plan as plan_query

    ctx = context_of(store)
    logical, explained = plan_query(ctx, text)
    if explained or not isinstance(logical, L.SelectPlan):
        raise AqlError("a dataset is made from a SELECT query (not EXPLAIN, SHOW, MATCH ...)")
    if logical.nearest is not None and not compute:
        raise AqlError("a NEAREST query dataset runs its search: make it with compute=True")
    with Reader(ctx) as reader:
        prep = prepare(ctx, logical, compute=compute, reader=reader)
        con = reader.get()
        digest = hashlib.sha256(f"{text.strip()}\0{ctx.catalog.stamp()}".encode()).hexdigest()
        out_dir = ctx.root / "datasets"
        path = out_dir / f"{digest[:24]}.parquet"
        sql, select = compile_select(ctx, prep, con)
        if path.exists():
            return [str(path)], tuple(sql.names)
        sql.register(con)
        aside = ctx.memo.tmp / f"{uuid.uuid4().hex}.parquet"
        try:
            with duck_errors():
                batches = con.sql(select, params=sql.params).to_arrow_reader(QUERY_ROW_GROUP)
                schema = pa.schema(
                    [f.with_name(n) for f, n in zip(batches.schema, sql.names, strict=True)]
                )
                with pq.ParquetWriter(aside, schema) as writer:
                    for rb in batches:
                        writer.write_batch(
                            pa.RecordBatch.from_arrays(rb.columns, schema=schema),
                            row_group_size=QUERY_ROW_GROUP,
                        )
            fsync_path(aside)
            out_dir.mkdir(exist_ok=True)
            os.replace(aside, path)
        finally:
            aside.unlink(missing_ok=True)
            sql.unregister(con)
    return [str(path)], tuple(sql.names)


__all__ = ["FeatureDataset", "dataset", "to_torch"]

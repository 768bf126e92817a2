"""Reading annotations of one type: the rows people wrote (catalog) and the current model runs
(Parquet), as one DuckDB relation.

:func:`snapshot` reads, in one catalog transaction, a type's human rows and the Parquet files
of the model runs in view (per annotator and asset, the newest run of the newest version, or
the runs asked for). :meth:`Snapshot.sql` is one ``UNION ALL BY NAME`` statement over them
with every column of the type (``id, type, asset_id, start_s, end_s, box, polygon, label,
confidence, text, [vector], <fields>, author, created_at, updated_at, deleted``); the human
rows are an Arrow table registered under :attr:`Snapshot.view`, the files are a bound
parameter. The AQL executor and the Python API both read through it.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from amberlite.define.annotation import AnnotationType
from amberlite.errors import AnnotationError

HUMAN_COLUMNS = (
    "id, type, type_version, asset_id, start_s, end_s, box, polygon, label, confidence, text, "
    "vector, fields, author, created_at, updated_at, deleted"
)


@dataclass(frozen=True)
class RunFiles:
    """One committed run in view: its file and the assets it is current for (None: all)."""

    run_id: int
    annotator: str
    version: int
    path: str
    assets: tuple[str, ...] | None
    committed_at: Any
    current: tuple[str, ...] = ()  # the assets it is current for (empty: not listed)


@dataclass
class Snapshot:
    """A type's annotations as of one catalog transaction (see the module docstring)."""

    atype: AnnotationType
    human: pa.Table
    runs: list[RunFiles] = field(default_factory=list)
    view: str = "human_annotations"

    def sql(self, include_deleted: bool = False) -> tuple[str, dict[str, Any]]:
        """One SELECT over the human rows and the runs' files, and its parameters."""
        vec = ", vector" if self.atype.vector_dim else ""
        user = "".join(f", {k}" for k in self.atype.fields)
        cols = (
            "id, type, asset_id, start_s, end_s, box, polygon, label, confidence, text"
            f"{vec}{user}, author, created_at, updated_at, deleted"
        )
        parts = [
            f"SELECT {cols} FROM {self.view}" + ("" if include_deleted else " WHERE NOT deleted")
        ]
        params: dict[str, Any] = {"type_name": self.atype.name} if self.runs else {}
        for i, run in enumerate(self.runs):
            params[f"f{i}"] = run.path
            params[f"author{i}"] = f"{run.annotator}@{run.version}"
            params[f"at{i}"] = run.committed_at
            where = ""
            if run.assets is not None:
                params[f"a{i}"] = list(run.assets)
                where = f" WHERE asset_id IN (SELECT unnest($a{i}::TEXT[]))"
            parts.append(
                f"SELECT id, $type_name AS type, asset_id, start_s, end_s, "
                f"box::DOUBLE[4] AS box, polygon::DOUBLE[2][] AS polygon, label, confidence, "
                f"text{vec}{user}, $author{i} AS author, $at{i}::TIMESTAMP AS created_at, "
                f"$at{i}::TIMESTAMP AS updated_at, FALSE AS deleted "
                f"FROM read_parquet($f{i}){where}"
            )
        return "\nUNION ALL BY NAME\n".join(parts), params

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register(self.view, self.human)


def asset_info(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, str], dict[str, tuple]]:
    """(alias -> asset id, asset id -> (alias, duration_s)) in one transaction."""
    rows = con.execute("SELECT asset_id, alias, duration_s FROM assets").fetchall()
    return {a: i for i, a, _ in rows}, {i: (a, d) for i, a, d in rows}


def asset_id_of(ref: Any, by_alias: Mapping[str, str], info: Mapping[str, tuple]) -> str:
    """The asset id of an alias or id; an unknown one raises naming the closest alias."""
    if isinstance(ref, str) and ref in by_alias:
        return by_alias[ref]
    if isinstance(ref, str) and ref in info:
        return ref
    close = difflib.get_close_matches(str(ref), list(by_alias), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise AnnotationError(f"unknown asset {ref!r}{hint}")


def human_table(rows: list[tuple], atype: AnnotationType) -> pa.Table:
    """The human rows of a type (``HUMAN_COLUMNS`` order) with user fields as typed columns."""
    cols = list(zip(*rows)) if rows else [[] for _ in HUMAN_COLUMNS.split(", ")]
    (ids, _types, _tv, assets, starts, ends, boxes, polys, labels, confs, texts, vecs,
     fields, authors, created, updated, deleted) = cols  # fmt: skip
    data: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.string()),
        "type": pa.array([atype.name] * len(ids), pa.string()),
        "asset_id": pa.array(assets, pa.string()),
        "start_s": pa.array(starts, pa.float64()),
        "end_s": pa.array(ends, pa.float64()),
        "box": pa.array(boxes, pa.list_(pa.float64(), 4)),
        "polygon": pa.array(polys, pa.list_(pa.list_(pa.float64(), 2))),
        "label": pa.array(labels, pa.string()),
        "confidence": pa.array(confs, pa.float64()),
        "text": pa.array(texts, pa.string()),
    }
    if atype.vector_dim:
        data["vector"] = pa.array(vecs, pa.list_(pa.float32(), atype.vector_dim))
    parsed = [json.loads(f) if f else {} for f in fields]
    for k, t in atype.fields.items():
        data[k] = pa.array([p.get(k) for p in parsed], t)
    data["author"] = pa.array(authors, pa.string())
    data["created_at"] = pa.array(created, pa.timestamp("us"))
    data["updated_at"] = pa.array(updated, pa.timestamp("us"))
    data["deleted"] = pa.array(deleted, pa.bool_())
    return pa.table(data)


def current_runs(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    type_name: str,
    *,
    version: int | None = None,
    run: int | None = None,
) -> list[RunFiles]:
    """The runs in view for a type: ``run`` alone; or, per annotator and asset, the newest run
    of ``version`` (of each annotator's newest version when None)."""
    if run is not None:
        rows = con.execute(
            """SELECT run_id, annotator, version, path, committed_at FROM annotation_runs
               WHERE type = ? AND run_id = ?""",
            [type_name, run],
        ).fetchall()
        return [RunFiles(r[0], r[1], r[2], str(root / r[3]), None, r[4]) for r in rows if r[3]]
    rows = con.execute(
        """WITH r AS (
             SELECT run_id, annotator, version, path, committed_at, unnest(assets) AS asset_id,
                    max(version) OVER (PARTITION BY annotator) AS newest
             FROM annotation_runs WHERE type = $t),
           cur AS (
             SELECT * FROM r WHERE version = coalesce($v, newest)
             QUALIFY row_number() OVER (PARTITION BY annotator, asset_id ORDER BY run_id DESC) = 1)
           SELECT cur.run_id, any_value(cur.annotator), any_value(cur.version),
                  any_value(cur.path), any_value(cur.committed_at), list(cur.asset_id ORDER BY
                  cur.asset_id), any_value(len(a.assets))
           FROM cur JOIN annotation_runs a USING (run_id)
           GROUP BY cur.run_id ORDER BY cur.run_id""",
        {"t": type_name, "v": version},
    ).fetchall()
    out = []
    for run_id, name, ver, path, at, assets, total in rows:
        if path is None:
            continue  # a run that found nothing: it still hides older runs of its assets
        out.append(
            RunFiles(
                run_id,
                name,
                ver,
                str(root / path),
                None if len(assets) == total else tuple(assets),
                at,
                tuple(assets),
            )  # fmt: skip
        )
    return out


# -- AQL: an annotation set as SQL over the catalog connection a query runs on -------------------
_DUCK = {
    "bool": "BOOLEAN", "string": "VARCHAR", "double": "DOUBLE", "float": "FLOAT",
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
}  # fmt: skip


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type of an annotation field's Arrow type."""
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return duck_type(t.value_type) + "[]"
    return _DUCK[str(t)]


def type_columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Annotation type -> {user column: AQL kind} (``vector`` included), every type."""
    from amberlite.core.types import aql_kind
    from amberlite.define.annotation import BUILTIN_TYPES

    types = {t.name: t for t in BUILTIN_TYPES}
    for name, version, decl in con.execute(
        "SELECT name, version, declaration FROM annotation_types ORDER BY name, version"
    ).fetchall():
        types[name] = AnnotationType.from_declaration(name, version, json.loads(decl))
    out = {}
    for name, t in types.items():
        cols = {k: aql_kind(str(v)) for k, v in t.fields.items()}
        if t.vector_dim:
            cols["vector"] = "vec"
        out[name] = cols
    return out


def type_of(con: duckdb.DuckDBPyConnection, name: str) -> AnnotationType:
    from amberlite.define.annotation import BUILTIN_TYPES

    rows = con.execute(
        "SELECT version, declaration FROM annotation_types WHERE name = ? ORDER BY version DESC "
        "LIMIT 1",
        [name],
    ).fetchall()
    if rows:
        return AnnotationType.from_declaration(name, rows[0][0], json.loads(rows[0][1]))
    for t in BUILTIN_TYPES:
        if t.name == name:
            return t
    raise AnnotationError(f"unknown annotation type {name!r}")


@dataclass(frozen=True)
class TypeView:
    """What an AQL annotation set reads, as of one catalog state: the type, the model runs in
    view, the live human rows (AQL columns, fields typed) and the assets' aliases and frame
    rates. ``stamp`` names that state of the type's rows (its text indexes are keyed by it)."""

    atype: AnnotationType
    runs: tuple[RunFiles, ...]
    human: pa.Table
    assets: pa.Table
    stamp: str


_VIEWS: OrderedDict[tuple[str, str], tuple[Any, TypeView]] = OrderedDict()
_VIEWS_MAX = 64  # (store, type) views kept, least recently used dropped first
_VIEWS_LOCK = threading.Lock()


def type_view(catalog: Any, root: Path, name: str, con: Any = None) -> TypeView:
    """The :class:`TypeView` of annotation type ``name``, read in one catalog transaction
    (``con`` when given, else a read of ``catalog``) and remembered until the catalog changes
    (:meth:`amberlite.catalog.Catalog.stamp`): a repeated query over unchanged annotations
    reads no catalog rows, and any write (an edit, a new run) is seen by the next one."""
    key = (str(root), name)
    stamp = catalog.stamp()  # before the read: a write after it only makes the next one miss
    with _VIEWS_LOCK:
        hit = _VIEWS.get(key)
        if hit is not None and hit[0] == stamp:
            _VIEWS.move_to_end(key)
            return hit[1]
    if con is None:
        with catalog.read() as c:
            view = read_view(c, root, name)
    else:
        view = read_view(con, root, name)
    with _VIEWS_LOCK:
        _VIEWS[key] = (stamp, view)
        _VIEWS.move_to_end(key)
        while len(_VIEWS) > _VIEWS_MAX:
            _VIEWS.popitem(last=False)
    return view


def read_view(con: duckdb.DuckDBPyConnection, root: Path, name: str) -> TypeView:
    """A :class:`TypeView` read on ``con`` (one transaction)."""
    atype = type_of(con, name)
    runs = tuple(current_runs(con, root, name))
    vec = f", h.vector::FLOAT[{atype.vector_dim}] AS vector" if atype.vector_dim else ""
    fields, params = "", [name]
    for k, t in atype.fields.items():
        get = "json_extract" if duck_type(t).endswith("[]") else "json_extract_string"
        fields += f", {get}(h.fields, ?)::{duck_type(t)} AS {k}"
        params.insert(-1, "$." + k)
    human = con.sql(
        f"""SELECT h.id, h.asset_id, h.start_s, h.end_s, h.label, h.confidence, h.text,
            h.box::DOUBLE[] AS box, h.polygon::DOUBLE[][] AS polygon,
            h.author{vec}{fields}, h.updated_at
            FROM annotations h WHERE h.type = ? AND NOT h.deleted ORDER BY h.id""",
        params=params,
    ).to_arrow_table()
    assets = con.sql(
        "SELECT asset_id, alias, fps_den::DOUBLE / fps_num AS _spf FROM assets"
    ).to_arrow_table()
    last = max(human.column("updated_at").to_pylist(), default=None)
    runs_seen = [(r.run_id, r.assets) for r in runs]
    stamp = repr((name, atype.version, human.num_rows, str(last), runs_seen))
    return TypeView(atype, runs, human.drop_columns(["updated_at"]), assets, stamp)


def view_sql(view: TypeView, human: str, assets: str, scope: str, bind: Any) -> str:
    """SQL of an annotation type's live rows with the columns of an AQL annotation set: the
    human rows (the Arrow table ``view.human``, registered as ``human``) and the current model
    runs' files, each joined to the assets (``view.assets`` registered as ``assets``, alias
    ``a``). Boxes are lists (``DOUBLE[]``, as DuckDB reads them from Parquet: no cast per row).
    ``scope`` is a condition on ``a.asset_id``; ``bind`` binds a value and returns its
    parameter's name. With no live human rows the runs are read alone (no union)."""
    atype = view.atype
    tail = f", a.alias AS asset, a._spf FROM {{}} JOIN {assets} a ON a.asset_id = {{}}.asset_id"
    # Each branch starts with a constant: of a union branch whose columns are all unused
    # (``count(*)``), DuckDB still reads the first one, which must not be a column of the file.
    parts = []
    if view.human.num_rows or not view.runs:
        parts.append(f"SELECT TRUE AS _k, h.*{tail.format(f'{human} h', 'h')} WHERE {scope}")
    rvec = f", r.vector::FLOAT[{atype.vector_dim}] AS vector" if atype.vector_dim else ""
    rfields = "".join(f", r.{k}" for k in atype.fields)
    for run in view.runs:
        select = f"""SELECT TRUE AS _k, r.id, a.asset_id, r.start_s, r.end_s, r.label,
                r.confidence, r.text, r.box, r.polygon,
                {bind(f"{run.annotator}@{run.version}")} AS author{rvec}{rfields}"""
        if run.assets is None and len(run.current) == 1:
            # A run of one asset: every row is that asset's, so the asset's row is joined as
            # a constant (the file's asset_id column is neither read nor hashed).
            one = f"SELECT * FROM {assets} a WHERE a.asset_id = {bind(run.current[0])}"
            one = f"({one} AND {scope})"
            parts.append(
                f"{select}, a.alias AS asset, a._spf FROM read_parquet({bind(run.path)}) r, "
                f"{one} AS a"
            )
            continue
        where = scope
        if run.assets is not None:
            where += f" AND r.asset_id IN (SELECT unnest({bind(list(run.assets))}::TEXT[]))"
        parts.append(
            select + tail.format(f"read_parquet({bind(run.path)}) r", "r") + f" WHERE {where}"
        )
    return "\nUNION ALL BY NAME\n".join(parts)


# -- a process-wide in-memory DuckDB: statements that read only annotations run here ----------
_ENGINE: tuple[int, duckdb.DuckDBPyConnection] | None = None


def engine() -> duckdb.DuckDBPyConnection:
    """A new cursor on this process's in-memory DuckDB database (opened once per process; a
    forked child opens its own): a statement over annotation views and Parquet files needs no
    catalog connection (opening one costs tens of milliseconds). Close the cursor after use;
    each thread uses its own."""
    global _ENGINE
    with _VIEWS_LOCK:
        if _ENGINE is None or _ENGINE[0] != os.getpid():
            _ENGINE = (os.getpid(), duckdb.connect(":memory:"))
        return _ENGINE[1].cursor()

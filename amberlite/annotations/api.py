"""``store.annotations``: add, edit, remove, read, import and export annotations.

People and applications write one annotation at a time (or a file of them); each write is one
catalog transaction (serialized across processes by the catalog lock, so the next read in any
process sees it) that validates against the type's schema first: a bad record raises
:class:`~amberlite.errors.AnnotationError` and nothing is written. Every change is kept in
``annotation_history`` (who, when, what changed); removal is a soft delete. Model runs are
written by :mod:`amberlite.annotations.runs` and read here alongside.

A record is the JSON Lines form: ``type, asset (alias), start_s, end_s, box, polygon, label,
confidence, text, [vector], author, <fields>`` plus ``id, created_at, updated_at, deleted``.

Example:
    >>> import amberlite, tempfile
    >>> store = amberlite.open(tempfile.mkdtemp())
    >>> store.annotations.list("comment")
    []
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from amberlite import faults
from amberlite.annotations.read import (
    HUMAN_COLUMNS,
    Snapshot,
    asset_id_of,
    asset_info,
    current_runs,
    human_table,
)
from amberlite.catalog.changes import annotations_key
from amberlite.catalog.diff import Change, classify
from amberlite.define.annotation import (
    BUILTIN_TYPES,
    STANDARD,
    AnnotationType,
    AnnotatorSpec,
    check_annotation,
)
from amberlite.errors import AnnotationError, DefinitionError
from amberlite.memo.store import now

if TYPE_CHECKING:
    import pyarrow as pa

    from amberlite.annotations.runs import RunInfo
    from amberlite.context import StoreContext

MODEL_ID = re.compile(r"^r(\d+)-(\d+)$")
HUMAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
EDITABLE = ("start_s", "end_s", *STANDARD, "vector")


def iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.isoformat(timespec="milliseconds") + "Z"


def check_id(id: Any) -> str:  # noqa: A002
    """An annotation id as given by a caller: a short token, never a path."""
    if not isinstance(id, str) or not (HUMAN_ID.match(id) or MODEL_ID.match(id)):
        raise AnnotationError(f"invalid annotation id {id!r}")
    return id


class Annotations:
    """The annotations of one store (``store.annotations``); see the module docstring."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx
        self._types: tuple[tuple, dict[str, dict[int, AnnotationType]]] | None = None
        self._annotators: tuple[tuple, dict[str, dict[int, AnnotatorSpec]]] | None = None

    # -- types and annotators ------------------------------------------------------------------
    def _all_types(
        self, con: duckdb.DuckDBPyConnection | None = None
    ) -> dict[str, dict[int, AnnotationType]]:
        """Every type by name and version; read with ``con`` inside a transaction (the
        catalog lock is not re-entrant across connections), else cached by catalog stamp."""
        stamp = self.ctx.catalog.stamp()
        if con is None and self._types is not None and self._types[0] == stamp:
            return self._types[1]
        sql = "SELECT name, version, declaration FROM annotation_types ORDER BY name, version"
        rows = con.execute(sql).fetchall() if con is not None else self.ctx.catalog.query(sql)
        out: dict[str, dict[int, AnnotationType]] = {t.name: {t.version: t} for t in BUILTIN_TYPES}
        for name, version, decl in rows:
            out.setdefault(name, {})[version] = AnnotationType.from_declaration(
                name, version, json.loads(decl)
            )
        if con is None:
            self._types = (stamp, out)
        return out

    def types(self) -> dict[str, AnnotationType]:
        """Every annotation type (built-in and applied), newest version of each."""
        return {n: v[max(v)] for n, v in sorted(self._all_types().items())}

    def type(
        self, name: str, version: int | None = None, con: duckdb.DuckDBPyConnection | None = None
    ) -> AnnotationType:
        """A type by name (its newest version unless ``version``)."""
        types = self._all_types(con)
        versions = types.get(name) if isinstance(name, str) else None
        if not versions:
            close = difflib.get_close_matches(str(name), list(types), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AnnotationError(f"unknown annotation type {name!r}{hint}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise AnnotationError(f"annotation type {name} has no version {version}")
        return versions[version]

    def annotators(self) -> dict[str, AnnotatorSpec]:
        """Every annotator (built-in and applied), newest version of each."""
        return {n: v[max(v)] for n, v in sorted(self._all_annotators().items())}

    def annotator(self, name: str, version: int | None = None) -> AnnotatorSpec:
        if "@" in name and version is None:
            name, _, v = name.partition("@")
            if not v.isdigit():
                raise AnnotationError(f"bad annotator version in {name}@{v}: use name@N")
            version = int(v)
        versions = self._all_annotators().get(name)
        if not versions:
            close = difflib.get_close_matches(name, list(self._all_annotators()), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AnnotationError(f"unknown annotator {name!r}{hint}")
        if version is not None and version not in versions:
            raise AnnotationError(f"annotator {name} has no version {version}")
        return versions[version if version is not None else max(versions)]

    def _all_annotators(self) -> dict[str, dict[int, AnnotatorSpec]]:
        stamp = self.ctx.catalog.stamp()
        if self._annotators is not None and self._annotators[0] == stamp:
            return self._annotators[1]
        from amberlite.define.loader import load_annotation_defs
        from amberlite.library.annotators import builtin_annotators

        out: dict[str, dict[int, AnnotatorSpec]] = {}
        for spec in builtin_annotators():
            out.setdefault(spec.name, {})[spec.version] = spec
        rows = self.ctx.catalog.query(
            """SELECT a.name, a.version, d.path, d.source FROM annotators a
               JOIN definitions d ON a.definition_sha = d.sha ORDER BY a.applied_at"""
        )
        for name, version, path, source in rows:
            try:
                _, specs = load_annotation_defs(path, source)
            except DefinitionError:
                continue
            for spec in specs:
                if (spec.name, spec.version) == (name, version):
                    out.setdefault(name, {})[version] = spec
        self._annotators = (stamp, out)
        return out

    def classify(
        self, types: Sequence[AnnotationType], annotators: Sequence[AnnotatorSpec]
    ) -> list[Change]:
        """Each declared type and annotator against the catalog (as ``apply`` classifies
        features): ``changed`` means a new schema or code under the same version."""
        builtin = {t.name for t in BUILTIN_TYPES} | {a.name for a in _builtin_annotator_specs()}
        clash = [x.name for x in (*types, *annotators) if x.name in builtin]
        if clash:
            raise DefinitionError(f"{clash[0]} is a built-in annotation type or annotator")
        known = {t.name for t in types} | set(self._all_types())
        for a in annotators:
            if a.type not in known:
                raise DefinitionError(f"annotator {a.name} writes unknown type {a.type!r}")
        changes = []
        for table, items in (("annotation_types", types), ("annotators", annotators)):
            kind = "annotation type" if table == "annotation_types" else "annotator"
            stored: dict[str, dict[int, str]] = {}
            for name, version, fp in self.ctx.catalog.query(
                f"SELECT name, version, fingerprint FROM {table}"
            ):
                stored.setdefault(name, {})[version] = fp
            for x in items:
                fp = x.fingerprint()
                changes.append(classify(x.name, x.version, fp, stored.get(x.name, {}), kind))
        return changes

    @staticmethod
    def record(
        con: duckdb.DuckDBPyConnection,
        types: Sequence[AnnotationType],
        annotators: Sequence[AnnotatorSpec],
        sha: str,
    ) -> None:
        """Record applied types and annotators (inside ``apply``'s transaction)."""
        for t in types:
            con.execute(
                """INSERT INTO annotation_types VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE
                   SET fingerprint = excluded.fingerprint, declaration = excluded.declaration,
                   definition_sha = excluded.definition_sha""",
                [t.name, t.version, t.fingerprint(), json.dumps(t.declaration()), sha, now()],
            )
        for a in annotators:
            con.execute(
                """INSERT INTO annotators VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE
                   SET fingerprint = excluded.fingerprint, type = excluded.type,
                   entity = excluded.entity, definition_sha = excluded.definition_sha""",
                [a.name, a.version, a.type, a.entity, a.fingerprint(), sha, now()],
            )

    # -- assets ---------------------------------------------------------------------------------
    _assets = staticmethod(asset_info)
    _asset_id = staticmethod(asset_id_of)

    # -- writing (people and applications) ------------------------------------------------------
    def add(
        self,
        type: str,  # noqa: A002
        asset: str,
        start_s: float,
        end_s: float,
        *,
        box: Sequence[float] | None = None,
        label: str | None = None,
        confidence: float | None = None,
        text: str | None = None,
        author: str,
        **fields: Any,
    ) -> str:
        """Add one annotation; returns its id. ``fields`` may hold ``polygon``, ``vector``
        and the type's user fields."""
        record = {
            "type": type,
            "asset": asset,
            "start_s": start_s,
            "end_s": end_s,
            "box": box,
            "label": label,
            "confidence": confidence,
            "text": text,
            "author": author,
            **fields,
        }
        return self._insert([record], None, "add")[0]

    def add_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add annotations (records with the arguments of :meth:`add` as keys) in one catalog
        transaction; returns them as stored. One invalid record adds none."""
        return self._insert(records, None, "add", stored=True)

    def _insert(
        self,
        records: Sequence[Mapping[str, Any]],
        author: str | None,
        action: str,
        stored: bool = False,
    ) -> list[Any]:
        """Insert human records; their ids, or with ``stored`` the records as stored."""
        with self.ctx.catalog.write(touches=()) as con:  # the records' types, below
            by_alias, info = self._assets(con)
            rows, history, ids = [], [], []
            seen: set[str] = set()
            for n, rec in enumerate(records, 1):
                where = f"record {n}: " if len(records) > 1 else ""
                try:
                    row = self._validated(rec, author, by_alias, info, con)
                except AnnotationError as e:
                    raise AnnotationError(f"{where}{e}") from None
                if row["id"] in seen:
                    raise AnnotationError(f"{where}id {row['id']!r} appears twice")
                seen.add(row["id"])
                rows.append(row)
                ids.append(row["id"])
            if ids:
                taken = con.execute(
                    "SELECT id FROM annotations WHERE id IN (SELECT unnest(?::TEXT[])) LIMIT 1",
                    [ids],
                ).fetchall()
                if taken:
                    raise AnnotationError(f"annotation id {taken[0][0]!r} already exists")
            at = now()
            for row in rows:
                row["created_at"] = row["updated_at"] = at
                changes = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
                history.append((row["id"], 1, row["author"], at, action, _json(changes)))
            self.ctx.catalog.touch(*{annotations_key(r["type"]) for r in rows})
            self._write_rows(con, rows)
            self._write_history(con, history)
            faults.point("annotation_before_commit")
            if stored:
                return self._dicts(con, ids)
        return ids

    def _validated(
        self,
        rec: Mapping[str, Any],
        author: str | None,
        by_alias: Mapping[str, str],
        info: Mapping[str, tuple],
        con: duckdb.DuckDBPyConnection,
    ) -> dict[str, Any]:
        if not isinstance(rec, Mapping):
            raise AnnotationError(f"an annotation is an object, not {type(rec).__name__}")
        atype = self.type(rec.get("type"), con=con)
        asset_id = self._asset_id(rec.get("asset", rec.get("asset_id")), by_alias, info)
        extra = set(rec) - {
            "type", "asset", "asset_id", "id", "author", "created_at", "updated_at", "deleted",
            "start_s", "end_s", *STANDARD, "vector", *atype.fields,
        }  # fmt: skip
        if extra:
            raise AnnotationError(
                f"unknown field {sorted(extra)[0]!r} for annotation type {atype.name} "
                f"(its fields: {', '.join(atype.fields) or 'none besides the standard ones'})"
            )
        who = rec.get("author") or author
        if not isinstance(who, str) or not who.strip():
            raise AnnotationError("an annotation needs an author (a non-empty name)")
        given = rec.get("id")
        if given is not None:
            check_id(given)
            if MODEL_ID.match(given):
                raise AnnotationError(f"id {given!r} is reserved for model annotations")
        row = check_annotation(rec, atype, info[asset_id][1])
        row.update(
            id=given or uuid.uuid4().hex[:16],
            type=atype.name,
            type_version=atype.version,
            asset_id=asset_id,
            author=who,
        )
        return row

    @staticmethod
    def _write_rows(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        import pyarrow as pa

        std = {"id", "type", "type_version", "asset_id", "start_s", "end_s", "box", "polygon"}
        std |= {"label", "confidence", "text", "vector", "author", "created_at", "updated_at"}
        table = pa.table(
            {
                "id": [r["id"] for r in rows],
                "type": [r["type"] for r in rows],
                "type_version": pa.array([r["type_version"] for r in rows], pa.int32()),
                "asset_id": [r["asset_id"] for r in rows],
                "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
                "end_s": pa.array([r["end_s"] for r in rows], pa.float64()),
                "box": pa.array([r["box"] for r in rows], pa.list_(pa.float64())),
                "polygon": pa.array([r["polygon"] for r in rows], pa.list_(pa.list_(pa.float64()))),
                "label": pa.array([r["label"] for r in rows], pa.string()),
                "confidence": pa.array([r["confidence"] for r in rows], pa.float64()),
                "text": pa.array([r["text"] for r in rows], pa.string()),
                "vector": pa.array([r.get("vector") for r in rows], pa.list_(pa.float32())),
                "fields": [
                    _json({k: v for k, v in r.items() if k not in std and k != "deleted"})
                    for r in rows
                ],
                "author": [r["author"] for r in rows],
                "created_at": pa.array([r["created_at"] for r in rows], pa.timestamp("us")),
                "updated_at": pa.array([r["updated_at"] for r in rows], pa.timestamp("us")),
            }
        )
        con.register("new_annotations", table)
        con.execute(
            """INSERT INTO annotations SELECT id, type, type_version, asset_id, start_s, end_s,
               box::DOUBLE[4], polygon::DOUBLE[2][], label, confidence, text, vector::FLOAT[],
               fields, author, created_at, updated_at, FALSE FROM new_annotations"""
        )
        con.unregister("new_annotations")

    @staticmethod
    def _write_history(con: duckdb.DuckDBPyConnection, history: list[tuple]) -> None:
        import pyarrow as pa

        cols = list(zip(*history))
        con.register(
            "new_history",
            pa.table(
                {
                    "id": cols[0],
                    "seq": pa.array(cols[1], pa.int32()),
                    "author": cols[2],
                    "changed_at": pa.array(cols[3], pa.timestamp("us")),
                    "action": cols[4],
                    "changes": cols[5],
                }
            ),
        )
        con.execute("INSERT INTO annotation_history SELECT * FROM new_history")
        con.unregister("new_history")

    def _human_row(self, con: duckdb.DuckDBPyConnection, id: str) -> dict[str, Any]:  # noqa: A002
        if MODEL_ID.match(id):
            raise AnnotationError(
                f"annotation {id} was written by a model run: model annotations are read-only "
                "(run the annotator again, or add a comment)"
            )
        cur = con.execute(f"SELECT {HUMAN_COLUMNS} FROM annotations WHERE id = ?", [id])
        row = cur.fetchone()
        if row is None:
            raise AnnotationError(f"no annotation with id {id!r}")
        out = dict(zip([d[0] for d in cur.description], row))
        out.update(json.loads(out.pop("fields") or "{}"))
        return out

    def edit(self, id: str, *, author: str, **changes: Any) -> dict[str, Any]:  # noqa: A002
        """Change fields of an annotation; returns the new record. History keeps the old and
        new value of each changed field."""
        _check_change(id, author, "an edit")
        if not changes:
            raise AnnotationError("nothing to change: name fields to edit")
        with self.ctx.catalog.write(touches=()) as con:
            row = self._changing(con, id)
            if row["deleted"]:
                raise AnnotationError(f"annotation {id} was removed")
            atype = self.type(row["type"], row["type_version"], con)
            bad = [k for k in changes if k not in EDITABLE and k not in atype.fields]
            if bad:
                raise AnnotationError(
                    f"cannot edit {bad[0]!r} of a {atype.name} annotation (editable: "
                    f"{', '.join([*EDITABLE[:-1], *atype.fields])})"
                )
            _, info = self._assets(con)
            merged = {**row, **changes}
            checked = check_annotation(merged, atype, info[row["asset_id"]][1])
            diff = {
                k: [_plain(row.get(k)), _plain(checked[k])]
                for k in checked
                if _plain(row.get(k)) != _plain(checked[k])
            }
            if not diff:
                return self._dicts(con, [id])[0]
            at = now()
            new = {**row, **checked, "updated_at": at}
            con.execute("DELETE FROM annotations WHERE id = ?", [id])
            self._write_rows(con, [new])
            _history(con, id, author, at, "edit", _json(diff))
            faults.point("annotation_before_commit")
            return self._dicts(con, [id])[0]

    def remove(self, id: str, *, author: str) -> None:  # noqa: A002
        """Soft-delete an annotation: it leaves every read but stays in history."""
        _check_change(id, author, "a removal")
        with self.ctx.catalog.write(touches=()) as con:
            row = self._changing(con, id)
            if row["deleted"]:
                raise AnnotationError(f"annotation {id} was already removed")
            at = now()
            con.execute(
                "UPDATE annotations SET deleted = TRUE, updated_at = ? WHERE id = ?", [at, id]
            )
            _history(con, id, author, at, "remove", "{}")

    def _changing(self, con: duckdb.DuckDBPyConnection, id: str) -> dict[str, Any]:  # noqa: A002
        """A person's annotation about to change, its type's change key touched."""
        row = self._human_row(con, id)
        self.ctx.catalog.touch(annotations_key(row["type"]))
        return row

    # -- reading --------------------------------------------------------------------------------
    def snapshot(
        self,
        con: duckdb.DuckDBPyConnection,
        type: str,  # noqa: A002
        *,
        version: int | None = None,
        run: int | None = None,
        include_deleted: bool = True,
    ) -> Snapshot:
        """A type's human rows and model runs in view, read with ``con`` (see
        :mod:`amberlite.annotations.read`)."""
        atype = self.type(type, con=con)
        rows = con.execute(
            f"SELECT {HUMAN_COLUMNS} FROM annotations WHERE type = ?"
            + ("" if include_deleted else " AND NOT deleted")
            + " ORDER BY id",
            [atype.name],
        ).fetchall()
        if version is not None or run is not None:
            rows = []  # a model version or run alone
        runs = current_runs(con, self.ctx.root, atype.name, version=version, run=run)
        return Snapshot(atype, human_table(rows, atype), runs)

    def table(
        self,
        type: str,  # noqa: A002
        *,
        asset: str | Sequence[str] | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        include_deleted: bool = False,
        version: int | None = None,
        run: int | None = None,
    ) -> pa.Table:
        """A type's annotations as one Arrow table (``asset_id``, no alias), in
        (asset_id, start_s, id) order; the time window keeps those overlapping it."""
        window = (asset, start_s, end_s, include_deleted, version, run)
        return self._tables([type], *window)[0][1]

    def _tables(
        self,
        types: Sequence[str] | None,
        asset: str | Sequence[str] | None,
        start_s: float | None,
        end_s: float | None,
        include_deleted: bool,
        version: int | None,
        run: int | None,
    ) -> list[tuple[AnnotationType, pa.Table]]:
        """Tables of several types (every type when None) read in one catalog transaction."""
        with self.ctx.catalog.read() as con:
            names = list(types) if types is not None else list(self._all_types(con))
            snaps = [
                self.snapshot(con, n, version=version, run=run, include_deleted=include_deleted)
                for n in names
            ]
            by_alias, info = self._assets(con)
        where, params = [], {}
        if asset is not None:
            refs = [asset] if isinstance(asset, str) else list(asset)
            where.append("asset_id IN (SELECT unnest($assets::TEXT[]))")
            params["assets"] = [self._asset_id(r, by_alias, info) for r in refs]
        if start_s is not None:
            where.append("end_s >= $w0")
            params["w0"] = float(start_s)
        if end_s is not None:
            where.append("start_s <= $w1")
            params["w1"] = float(end_s)
        out = []
        duck = duckdb.connect()
        try:
            for snap in snaps:
                sql, p = snap.sql(include_deleted)
                sql = f"SELECT * FROM ({sql})" + (" WHERE " + " AND ".join(where) if where else "")
                snap.register(duck)
                table = duck.sql(sql + " ORDER BY asset_id, start_s, id", params={**p, **params})
                out.append((snap.atype, table.to_arrow_table()))
                duck.unregister(snap.view)
        finally:
            duck.close()
        return out

    def list(
        self,
        type: str | None = None,  # noqa: A002
        asset: str | Sequence[str] | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        include_deleted: bool = False,
        *,
        version: int | None = None,
        run: int | None = None,
    ) -> list[dict[str, Any]]:
        """Annotations as records (human and current model runs; an annotator ``version``
        or a ``run`` id reads that model output alone), overlapping the time window."""
        window = (asset, start_s, end_s, include_deleted, version, run)
        tables = self._tables(None if type is None else [type], *window)
        alias_of = self.ctx.names().alias_of
        out = []
        for atype, t in tables:
            out += self._records(atype.name, t.to_pylist(), atype, alias_of)
        return out

    def _records(
        self,
        type_name: str,
        rows: Iterable[dict[str, Any]],
        atype: AnnotationType | None = None,
        alias_of: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        alias_of = self.ctx.names().alias_of if alias_of is None else alias_of
        atype = atype or self.type(type_name)
        out = []
        for r in rows:
            d = {
                "id": r["id"],
                "type": type_name,
                "asset": alias_of.get(r["asset_id"], r["asset_id"]),
                "start_s": r["start_s"],
                "end_s": r["end_s"],
                "box": _plain(r["box"]),
                "polygon": _plain(r["polygon"]),
                "label": r["label"],
                "confidence": r["confidence"],
                "text": r["text"],
            }
            if atype.vector_dim:
                d["vector"] = _plain(r.get("vector"))
            d["author"] = r["author"]
            for k in atype.fields:
                d[k] = _plain(r.get(k))
            d.update(
                created_at=iso(r["created_at"]),
                updated_at=iso(r["updated_at"]),
                deleted=bool(r["deleted"]),
            )
            out.append(d)
        return out

    def _dicts(self, con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        alias_of = {i: a for i, (a, _) in self._assets(con)[1].items()}
        for id in ids:  # noqa: A001
            row = self._human_row(con, id)
            atype = self.type(row["type"], con=con)
            row.pop("type_version", None)
            out += self._records(atype.name, [row], atype, alias_of)
        return out

    def get(self, id: str) -> dict[str, Any]:  # noqa: A002
        """One annotation as a record (a removed one has ``deleted: True``)."""
        check_id(id)
        m = MODEL_ID.match(id)
        if m is None:
            with self.ctx.catalog.read() as con:
                return self._dicts(con, [id])[0]
        rows = self.ctx.catalog.query(
            "SELECT type FROM annotation_runs WHERE run_id = ?", [int(m.group(1))]
        )
        if not rows:
            raise AnnotationError(f"no annotation with id {id!r}")
        for r in self._records(rows[0][0], self.table(rows[0][0], run=int(m.group(1))).to_pylist()):
            if r["id"] == id:
                return r
        raise AnnotationError(f"no annotation with id {id!r}")

    def history(self, id: str) -> list[dict[str, Any]]:  # noqa: A002
        """Every change of an annotation, oldest first: ``seq, author, at, action, changes``
        (the record added, or ``{field: [old, new]}``)."""
        check_id(id)
        rows = self.ctx.catalog.query(
            """SELECT seq, author, changed_at, action, changes FROM annotation_history WHERE id = ?
               ORDER BY seq""",
            [id],
        )
        if not rows:
            raise AnnotationError(f"no history for annotation {id!r} (unknown id)")
        return [
            {"id": id, "seq": s, "author": a, "at": iso(t), "action": act, "changes": json.loads(c)}
            for s, a, t, act, c in rows
        ]

    # -- model runs (see amberlite.annotations.runs) ---------------------------------------------
    def run(
        self,
        annotator: str,
        assets: str | Sequence[str] | None = None,
        *,
        version: int | None = None,
        progress: bool | None = None,
    ) -> RunInfo:
        """Run an annotator (``name`` or ``name@version``) over its entities of the assets
        (every asset when None) and commit its annotations as one run."""
        from amberlite.annotations.runs import run_annotator

        spec = self.annotator(annotator, version)
        return run_annotator(self, spec, self.ctx.resolve_assets(assets), progress)

    def write_run(
        self,
        annotator: str,
        rows: pa.Table | Iterable[Mapping[str, Any]],
        *,
        type: str,  # noqa: A002
        version: int = 1,
        assets: str | Sequence[str] | None = None,
    ) -> RunInfo:
        """Commit annotations computed elsewhere (an Arrow table with ``asset_id``,
        ``start_s``, ``end_s``... or dicts) as one run of ``annotator@version`` over
        ``assets`` (the rows' assets when None)."""
        from amberlite.annotations.runs import write_run

        refs = [assets] if isinstance(assets, str) else assets
        return write_run(self, annotator, version, type, rows, refs)

    def gc(self) -> int:
        """Remove run files no committed run points at (left by killed runs); returns the
        count."""
        live = {r[0] for r in self.ctx.catalog.query(
            "SELECT path FROM annotation_runs WHERE path IS NOT NULL")}  # fmt: skip
        removed = 0
        for p in (self.ctx.root / "annotations").rglob("*.parquet"):
            if str(p.relative_to(self.ctx.root)) not in live:
                p.unlink(missing_ok=True)
                removed += 1
        return removed

    def runs(self, annotator: str | None = None) -> list[dict[str, Any]]:
        """Committed runs, newest first: ``run, annotator, version, type, rows, assets,
        committed_at``."""
        rows = self.ctx.catalog.query(
            """SELECT run_id, annotator, version, type, rows, assets, committed_at
               FROM annotation_runs WHERE $a IS NULL OR annotator = $a ORDER BY run_id DESC""",
            {"a": annotator},
        )
        alias_of = self.ctx.names().alias_of
        return [
            {"run": r, "annotator": a, "version": v, "type": t, "rows": n,
             "assets": [alias_of.get(x, x) for x in assets], "committed_at": iso(at)}
            for r, a, v, t, n, assets, at in rows
        ]  # fmt: skip

    # -- files ----------------------------------------------------------------------------------
    def import_file(self, path: str | os.PathLike[str], *, author: str | None = None) -> int:
        """Add the annotations of a JSON Lines (``.jsonl``/``.ndjson``) or CSV file in one
        transaction; a record without an author takes ``author``. Returns how many were
        added; a bad line raises naming it, and nothing is added."""
        from amberlite.annotations.files import read_records

        records = read_records(Path(path), self.type)
        for r in records:  # a model annotation's id names a run of the store it came from
            if isinstance(r.get("id"), str) and MODEL_ID.match(r["id"]):
                del r["id"]
        return len(self._insert(records, author, "import"))

    def export(self, path: str | os.PathLike[str], *, type: str | None = None) -> int:  # noqa: A002
        """Write the live annotations (of ``type``, or of every type) as JSON Lines or CSV,
        chosen by the file's suffix; returns how many were written."""
        from amberlite.annotations.files import write_records

        records = self.list(type)
        return write_records(Path(path), records, [self.type(r["type"]) for r in records])


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _json(value: Any) -> str:
    return json.dumps(_plain(value), default=str, sort_keys=True)


def _builtin_annotator_specs() -> list[AnnotatorSpec]:
    from amberlite.library.annotators import builtin_annotators

    return builtin_annotators()


def _check_change(id: str, author: Any, what: str) -> None:  # noqa: A002
    """An edit or removal names a valid id and an author."""
    check_id(id)
    if not isinstance(author, str) or not author.strip():
        raise AnnotationError(f"{what} needs an author (a non-empty name)")


def _history(con: duckdb.DuckDBPyConnection, id: str, author: str, at, action: str, changes: str):  # noqa: A002
    """One more row of an annotation's history (its next ``seq``)."""
    seq = con.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM annotation_history WHERE id = ?", [id]
    ).fetchone()[0]
    con.execute(
        "INSERT INTO annotation_history VALUES (?, ?, ?, ?, ?, ?)",
        [id, seq, author, at, action, changes],
    )

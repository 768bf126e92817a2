"""Annotation files: JSON Lines and CSV, read and written; Label Studio video exports read.

JSON Lines: one record a line, ``{"type": "comment", "asset": "film1", "start_s": 12.0,
"end_s": 14.5, "box": [x0, y0, x1, y1], "label": ..., "confidence": ..., "text": ...,
"author": ..., ...fields}``. CSV: one column per key; ``box``, ``polygon``, ``vector`` and
list fields hold JSON text, an empty cell is null. A ``.json`` file holding a list is read as
a Label Studio export: each ``videorectangle`` result becomes one annotation (type
``comment``, its label the rectangle's label, its box the union of its keyframes' boxes, its
time range from the first to the last keyframe).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from amberlite.define.annotation import AnnotationType
from amberlite.errors import AnnotationError

FIRST = ["id", "type", "asset", "start_s", "end_s", "box", "polygon", "label", "confidence"]
FIRST += ["text", "vector", "author"]
LAST = ["created_at", "updated_at"]
JSON_CELLS = {"box", "polygon", "vector"}


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "labelstudio"
    raise AnnotationError(
        f"{path}: unknown annotation file format {suffix or '(no suffix)'!r}: use .jsonl, "
        ".csv or a Label Studio .json export"
    )


def read_records(path: Path, type_of: Callable[[str], AnnotationType]) -> list[dict[str, Any]]:
    """The records of a file (format by suffix); a malformed line raises naming it."""
    fmt = _format(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not UTF-8 text") from None
    if fmt == "jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise AnnotationError(f"{path}:{n}: not JSON: {e.msg}") from None
            if not isinstance(rec, dict):
                raise AnnotationError(f"{path}:{n}: a line must be a JSON object")
            out.append(rec)
        return out
    if fmt == "csv":
        return [_csv_record(path, n, row, type_of) for n, row in _csv_rows(text)]
    return _label_studio(path, text)


def _csv_rows(text: str):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    yield from enumerate(reader, 2)


def _csv_record(
    path: Path, n: int, row: dict[str, str], type_of: Callable[[str], AnnotationType]
) -> dict[str, Any]:
    where = f"{path}:{n}"
    rec: dict[str, Any] = {}
    atype = type_of(row.get("type") or "")
    for k, v in row.items():
        if k is None:
            raise AnnotationError(f"{where}: more cells than header columns")
        if v is None or v == "" or k in LAST:
            continue
        try:
            if k in ("start_s", "end_s", "confidence"):
                rec[k] = float(v)
            elif k in JSON_CELLS:
                rec[k] = json.loads(v)
            elif k in atype.fields:
                rec[k] = _cell(atype.fields[k], v)
            else:
                rec[k] = v
        except ValueError:
            raise AnnotationError(f"{where}: column {k!r}: cannot read {v!r}") from None
    return rec


def _cell(t: pa.DataType, v: str) -> Any:
    if pa.types.is_boolean(t):
        if v.lower() not in ("true", "false"):
            raise ValueError(v)
        return v.lower() == "true"
    if pa.types.is_integer(t):
        return int(v)
    if pa.types.is_floating(t):
        return float(v)
    if pa.types.is_string(t):
        return v
    return json.loads(v)


def _label_studio(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not JSON: {e.msg}") from None
    if not isinstance(tasks, list):
        raise AnnotationError(f"{path}: a Label Studio export is a JSON list of tasks")
    out = []
    for task in tasks:
        data = task.get("data", {}) if isinstance(task, dict) else {}
        asset = data.get("asset") or Path(str(data.get("video", ""))).stem
        for ann in task.get("annotations", []) if isinstance(task, dict) else []:
            author = str(ann.get("completed_by", "label-studio"))
            for res in ann.get("result", []):
                if res.get("type") != "videorectangle":
                    continue
                value = res.get("value", {})
                frames = [s for s in value.get("sequence", []) if s.get("enabled", True)]
                frames = frames or value.get("sequence", [])
                if not frames:
                    continue
                x0 = min(s["x"] for s in frames) / 100
                y0 = min(s["y"] for s in frames) / 100
                x1 = max(s["x"] + s["width"] for s in frames) / 100
                y1 = max(s["y"] + s["height"] for s in frames) / 100
                labels = value.get("labels") or [None]
                out.append(
                    {
                        "type": "comment",
                        "asset": asset,
                        "start_s": min(s["time"] for s in frames),
                        "end_s": max(s["time"] for s in frames),
                        "box": [round(c, 6) for c in (x0, y0, x1, y1)],
                        "label": labels[0],
                        "author": author,
                    }
                )
    return out


def write_records(
    path: Path, records: Sequence[dict[str, Any]], types: Sequence[AnnotationType]
) -> int:
    """Write records as JSON Lines or CSV (by suffix); returns how many."""
    fmt = _format(path)
    if fmt == "labelstudio":
        raise AnnotationError(f"{path}: export writes .jsonl or .csv")
    records = [{k: v for k, v in r.items() if k != "deleted"} for r in records]
    try:
        with path.open("w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
                return len(records)
            fields: dict[str, None] = {}
            for t in types:
                fields.update(dict.fromkeys(t.fields))
            cols = FIRST + list(fields) + LAST
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({k: _csv_out(r.get(k)) for k in cols})
    except OSError as e:
        raise AnnotationError(f"{path}: cannot write: {e.strerror or e}") from None
    return len(records)


def _csv_out(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return v

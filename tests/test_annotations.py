"""Annotations by people and applications: schemas, CRUD with history, validation, files,
several processes (real subprocesses, real SIGKILL, the real catalog)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import amberlite
from amberlite.errors import AnnotationError, ChangeRefused

FACES = """
import pyarrow as pa
from amberlite import annotation_type

faces = annotation_type("faces", version={version}, vector_dim=3,
                        fields={{"character": pa.string(), "{extra}": pa.int64()}})
"""


@pytest.fixture(scope="module")
def astore(tmp_path_factory, media_dir):
    store = amberlite.open(tmp_path_factory.mktemp("annot") / "store")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], aliases=["film", "other"])
    path = tmp_path_factory.mktemp("defs") / "faces.py"
    path.write_text(FACES.format(version=1, extra="age"))
    store.apply(path)
    return store


def _cli(store: Path, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amberlite.cli", "--store", str(store), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def _rows(store) -> int:
    return store.catalog.query("SELECT count(*) FROM annotations")[0][0]


def test_schema_change_without_bump_is_refused(tmp_path, astore):
    changed = tmp_path / "faces.py"
    changed.write_text(FACES.format(version=1, extra="height"))
    with pytest.raises(ChangeRefused, match="faces@1: schema changed without a version bump"):
        astore.apply(changed)
    assert "age" in astore.annotations.type("faces").fields
    changed.write_text(FACES.format(version=2, extra="height"))
    changes = astore.plan_apply(changed)
    assert [(c.name, c.version, c.resolution) for c in changes] == [("faces", 2, "new_version")]


def test_comment_is_built_in_and_crud_keeps_history(astore):
    ann = astore.annotations
    new = ann.add("comment", "film", 0.5, 1.5, box=[0.1, 0.2, 0.4, 0.6], text="black glove",
                  author="ana")  # fmt: skip
    rec = ann.get(new)
    assert {k: rec[k] for k in ("type", "asset", "start_s", "end_s", "box", "text", "author")} == {
        "type": "comment",
        "asset": "film",
        "start_s": 0.5,
        "end_s": 1.5,
        "box": [0.1, 0.2, 0.4, 0.6],
        "text": "black glove",
        "author": "ana",
    }
    assert rec["created_at"] == rec["updated_at"] and rec["deleted"] is False
    edited = ann.edit(new, author="ben", text="should be white", box=None)
    assert (edited["text"], edited["box"], edited["author"]) == ("should be white", None, "ana")
    assert edited["updated_at"] > edited["created_at"]
    ann.remove(new, author="cy")
    assert new not in {r["id"] for r in ann.list("comment")}
    gone = {r["id"]: r for r in ann.list("comment", include_deleted=True)}[new]
    assert gone["deleted"] is True and ann.get(new)["deleted"] is True
    hist = ann.history(new)
    assert [(h["seq"], h["author"], h["action"]) for h in hist] == [
        (1, "ana", "add"),
        (2, "ben", "edit"),
        (3, "cy", "remove"),
    ]
    assert hist[1]["changes"] == {
        "box": [[0.1, 0.2, 0.4, 0.6], None],
        "text": ["black glove", "should be white"],
    }
    with pytest.raises(AnnotationError, match="already removed"):
        ann.remove(new, author="cy")


def test_user_fields_vector_and_filters(astore):
    ann = astore.annotations
    a = ann.add("faces", "film", 0.0, 1.0, box=[0, 0, 0.5, 0.5], label="face", confidence=0.9,
                character="A", age=40, vector=[1.0, 0.0, 0.0], author="det")  # fmt: skip
    b = ann.add("faces", "other", 0.2, 0.4, character="B", author="det")
    got = {r["id"]: r for r in ann.list("faces")}
    assert got[a]["character"] == "A" and got[a]["age"] == 40
    assert got[a]["vector"] == pytest.approx([1.0, 0.0, 0.0])
    assert got[b]["age"] is None and got[b]["asset"] == "other"
    assert [r["id"] for r in ann.list("faces", asset="other")] == [b]
    # the time window keeps annotations overlapping it
    assert {r["id"] for r in ann.list("faces", start_s=0.3, end_s=0.35)} == {a, b}
    assert {r["id"] for r in ann.list("faces", start_s=0.5)} == {a}
    assert ann.edit(b, author="x", age=7)["age"] == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": [0.1, 0.1, 1.2, 0.5]}, "outside the frame"),
        ({"box": [0.5, 0.1, 0.2, 0.5]}, "x0 <= x1"),
        ({"box": [0.1, 0.2]}, r"box must be \[x0, y0, x1, y1\]"),
        ({"end_s": 99.0}, "outside the asset"),
        ({"start_s": 1.0, "end_s": 0.5}, "start_s <= end_s"),
        ({"age": "forty"}, "field 'age' of faces must be of type int64"),
        ({"age": True}, "must be of type int64"),
        ({"character": 3}, "must be of type string"),
        ({"confidence": 1.5}, "confidence must be within 0-1"),
        ({"vector": [1.0, 2.0]}, "vector must hold 3 numbers"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"type": "facez"}, "unknown annotation type 'facez' \\(did you mean 'faces'\\?\\)"),
        ({"asset": "flim"}, "unknown asset 'flim' \\(did you mean 'film'\\?\\)"),
        ({"author": ""}, "needs an author"),
        ({"polygon": [[0.1, 0.1], [2, 0.1], [0.5, 0.5]]}, "outside the frame"),
    ],
)
def test_invalid_annotations_are_refused_and_nothing_is_written(astore, kwargs, message):
    before = _rows(astore)
    args = {"type": "faces", "asset": "film", "start_s": 0.1, "end_s": 0.2, "author": "x"}
    args.update(kwargs)
    with pytest.raises(AnnotationError, match=message):
        astore.annotations.add(**args)
    assert _rows(astore) == before


def test_edit_is_validated_and_model_ids_are_read_only(astore):
    ann = astore.annotations
    i = ann.add("comment", "film", 0.1, 0.2, author="x")
    with pytest.raises(AnnotationError, match="outside the asset"):
        ann.edit(i, author="y", end_s=1000.0)
    with pytest.raises(AnnotationError, match="cannot edit 'asset'"):
        ann.edit(i, author="y", asset="other")
    assert ann.get(i)["end_s"] == 0.2 and len(ann.history(i)) == 1
    with pytest.raises(AnnotationError, match="no annotation with id"):
        ann.edit("0123456789abcdef", author="y", text="t")
    with pytest.raises(AnnotationError, match="invalid annotation id"):
        ann.get("../../etc/passwd")
    with pytest.raises(AnnotationError, match="model annotations are read-only"):
        ann.edit("r1-0", author="y", text="t")


def test_jsonl_and_csv_round_trips(astore, tmp_path):
    ann = astore.annotations
    ann.add("faces", "other", 0.5, 0.9, box=[0.2, 0.2, 0.3, 0.3], label="face", confidence=0.5,
            character="C, with comma", age=3, author="rt")  # fmt: skip
    ann.add("comment", "film", 1.0, 2.0, text='quote "this"\nnew line', author="rt")
    assets = astore.assets()

    def content(store):
        keep = lambda r: {k: v for k, v in r.items() if k not in ("created_at", "updated_at")}  # noqa: E731
        return sorted((keep(r) for r in store.annotations.list()), key=lambda r: r["id"])

    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"all.{suffix}"
        n = ann.export(out)
        assert n == len(ann.list()) > 0
        target = amberlite.open(tmp_path / f"copy_{suffix}")
        target.ingest(assets["path"].to_list(), aliases=assets["alias"].to_list())
        target.apply(astore.catalog.query("SELECT path FROM definitions")[0][0])
        assert target.annotations.import_file(out) == n
        assert content(target) == content(astore)
    one = ann.export(tmp_path / "faces.jsonl", type="faces")
    lines = (tmp_path / "faces.jsonl").read_text().splitlines()
    assert len(lines) == one and all(json.loads(x)["type"] == "faces" for x in lines)


def test_import_is_all_or_nothing_and_names_the_line(astore, tmp_path):
    good = {"type": "comment", "asset": "film", "start_s": 0.0, "end_s": 0.1, "author": "imp"}
    bad = {**good, "box": [0, 0, 3, 3]}
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, good, bad)) + "\n")
    before = _rows(astore)
    with pytest.raises(AnnotationError, match="record 3: box"):
        astore.annotations.import_file(path)
    assert _rows(astore) == before
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(AnnotationError, match=r"bad.jsonl:2: not JSON"):
        astore.annotations.import_file(path)
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text(json.dumps({k: v for k, v in good.items() if k != "author"}) + "\n")
    with pytest.raises(AnnotationError, match="needs an author"):
        astore.annotations.import_file(nameless)
    assert astore.annotations.import_file(nameless, author="batch") == 1


def test_label_studio_video_rectangles(astore, tmp_path):
    export = [
        {
            "data": {"video": "/data/upload/1/film.mp4"},
            "annotations": [
                {
                    "completed_by": 7,
                    "result": [
                        {
                            "type": "videorectangle",
                            "value": {
                                "labels": ["glove"],
                                "sequence": [
                                    {
                                        "frame": 1,
                                        "time": 0.2,
                                        "x": 10,
                                        "y": 20,
                                        "width": 30,
                                        "height": 40,
                                        "enabled": True,
                                    },  # fmt: skip
                                    {
                                        "frame": 9,
                                        "time": 1.0,
                                        "x": 20,
                                        "y": 10,
                                        "width": 30,
                                        "height": 40,
                                        "enabled": True,
                                    },  # fmt: skip
                                ],
                            },
                        },
                        {"type": "choices", "value": {"choices": ["x"]}},
                    ],
                }
            ],
        }
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(export))
    assert astore.annotations.import_file(path) == 1
    (rec,) = [r for r in astore.annotations.list("comment") if r["author"] == "7"]
    assert (rec["asset"], rec["label"], rec["start_s"], rec["end_s"]) == ("film", "glove", 0.2, 1.0)
    assert rec["box"] == pytest.approx([0.1, 0.1, 0.5, 0.6])


WRITER = """
import sys, amberlite
store = amberlite.open(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.annotations.add("comment", "film", 0.0, 0.1, text=f"{sys.argv[2]} {i}",
                          author=sys.argv[2])
"""


def test_two_writer_processes_and_visibility_in_another_process(astore, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(astore.root), who, "15"])
        for who in ("w1", "w2")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    mine = [r for r in astore.annotations.list("comment") if r["author"] in ("w1", "w2")]
    assert len(mine) == 30 == len({r["id"] for r in mine})
    assert {r["text"] for r in mine} == {f"w{w} {i}" for w in (1, 2) for i in range(15)}
    # an edit in another process is seen by this process's next read
    target = mine[0]["id"]
    done = _cli(astore.root, "annotate", "edit", target, "--text", "seen", "--author", "other")
    assert done.returncode == 0, done.stderr
    assert astore.annotations.get(target)["text"] == "seen"


def test_sigkilled_writer_leaves_nothing(astore):
    before = _rows(astore)
    proc = _cli(
        astore.root,
        "annotate", "add", "comment", "film", "0", "0.5", "--text", "lost",
        env={"AMBERLITE_FAULT": "annotation_before_commit"},
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    assert _rows(astore) == before
    assert not [r for r in astore.annotations.list("comment") if r["text"] == "lost"]
    # the store stays writable
    assert astore.annotations.add("comment", "film", 0.0, 0.5, author="after")


def _run(store: Path, *args: str):
    """The amberlite command in this process (click's runner): real store, no start-up cost."""
    from click.testing import CliRunner

    from amberlite.cli import main

    return CliRunner().invoke(main, ["--store", str(store), *args])


def test_cli_workflow(astore, tmp_path):
    added = _run(astore.root, "annotate", "add", "comment", "film", "0:00.5", "1.25",
                 "--box", "0.1,0.1,0.3,0.3", "--text", "cli note", "--author", "dee")  # fmt: skip
    assert added.exit_code == 0, added.output
    new = added.stdout.strip()
    assert astore.annotations.get(new)["start_s"] == 0.5
    listed = _run(astore.root, "annotate", "list", "comment", "--format", "jsonl")
    assert new in {json.loads(x)["id"] for x in listed.stdout.splitlines()}
    table = _run(astore.root, "annotate", "list", "comment", "--asset", "film")
    assert "cli note" in table.stdout
    assert _run(astore.root, "annotate", "rm", new, "--author", "dee").exit_code == 0
    hist = _run(astore.root, "annotate", "history", new).stdout
    assert "add" in hist and "remove" in hist
    out = tmp_path / "x.csv"
    exported = _run(astore.root, "annotate", "export", str(out), "--type", "comment")
    assert exported.exit_code == 0 and out.read_text().startswith("id,type,asset")
    for args, message in (
        (("add", "comment", "film", "0", "99", "--author", "d"), "outside the asset"),
        (("add", "comment", "film", "0", "1", "--box", "1,2"), "a box is X0,Y0,X1,Y1"),
        (("edit", new, "--text", "t"), "was removed"),
        (("import", str(tmp_path / "missing.jsonl")), "cannot read"),
    ):
        bad = _run(astore.root, "annotate", *args)
        assert bad.exit_code == 2, (args, bad.output)
        assert message in bad.stderr and "Traceback" not in bad.stderr

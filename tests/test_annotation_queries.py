"""AQL over annotations: goldens (tests/annotation_goldens.txt: query, plan, result), text
ranking, spatial predicates, buckets, edits seen by the next query, the docs' examples.

Regenerate the goldens with ``AQL_UPDATE_GOLDENS=1`` (or ``--update-goldens``) and review the
diff; a case without an expected block fails.
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import amberlite
from amberlite.errors import AqlError, AqlTypeError, ResolveError
from amberlite.plan.logical import show_plan
from amberlite.query import plan

GOLDENS = Path(__file__).parent / "annotation_goldens.txt"
DOC = Path(__file__).parent.parent / "docs" / "aql.md"
UPDATE = os.environ.get("AQL_UPDATE_GOLDENS") == "1"

FACES = """
import pyarrow as pa
from amberlite import annotation_type

faces = annotation_type("faces", fields={"character": pa.string(), "age": pa.int64()},
                        vector_dim=3)
"""
COMMENTS = [  # (asset, start, end, box, text, author)
    ("film1", 0.1, 0.5, [0.1, 0.1, 0.4, 0.6], "the black glove should be white", "ana"),
    ("film1", 0.9, 1.3, [0.5, 0.5, 0.9, 0.9], "black glove, black glove again", "ben"),
    ("film1", 1.7, 2.2, None, "nice cut here", "ben"),
    ("film2", 0.2, 0.6, [0.0, 0.0, 1.0, 1.0], "glove on the left", "ana"),
]


@pytest.fixture(scope="module")
def qstore(tmp_path_factory, media_dir):
    root = tmp_path_factory.mktemp("aq")
    store = amberlite.open(root / "store")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], aliases=["film1", "film2"])
    (root / "faces.py").write_text(FACES)
    store.apply(root / "faces.py")
    ann = store.annotations
    for asset, s, e, box, text, who in COMMENTS:
        ann.add("comment", asset, s, e, box=box, text=text, author=who)
    ann.add("faces", "film1", 0.0, 0.8, box=[0.2, 0.1, 0.5, 0.7], character="A", age=30,
            vector=[1.0, 0.0, 0.0], author="ana", id="face_a")  # fmt: skip
    ann.add("faces", "film1", 1.0, 1.4, box=[0.55, 0.5, 0.85, 0.95], character="B", age=41,
            vector=[0.0, 1.0, 0.0], author="ana")  # fmt: skip
    film = store.resolve_assets("film1")[0]
    ann.write_run(
        "detector",
        pa.table(
            {
                "asset_id": [film] * 3,
                "start_s": [0.2, 1.0, 1.8],
                "end_s": [0.3, 1.1, 1.9],
                "box": pa.array(
                    [[0.1, 0.1, 0.45, 0.6], [0.6, 0.6, 0.8, 0.8], [0.0, 0.0, 0.2, 0.2]],
                    pa.list_(pa.float64(), 4),
                ),  # fmt: skip
                "label": ["person", "person", "dog"],
                "confidence": [0.9, 0.8, 0.4],
            }
        ),
        type="subjects",
    )
    store.materialize("shots", progress=False)
    return store


def cases() -> list[tuple[str, str, str | None]]:
    """(title, query, expected block or None) of each golden case."""
    out = []
    for block in GOLDENS.read_text().split("\n=====\n"):
        if not block.strip():
            continue
        head, _, expected = block.partition("\n----\n")
        lines = head.strip().splitlines()
        title = lines[0].removeprefix("# title: ").strip()
        out.append((title, "\n".join(lines[1:]).strip(), expected.strip() or None))
    return out


def render(store, query: str) -> str:
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, float_precision=4,
                   tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True):  # fmt: skip
        table = str(store.query(query))
    return show_plan(plan(store, query)[0]) + "\n----\n" + table


def test_goldens(qstore):
    found = cases()
    assert len(found) >= 10
    out, failures = [], []
    for title, query, expected in found:
        got = render(qstore, query)
        out.append(f"# title: {title}\n{query}\n----\n{got}\n")
        if not UPDATE and got != expected:
            failures.append(f"{title}:\n--- expected\n{expected}\n--- got\n{got}")
    if UPDATE:
        GOLDENS.write_text("\n=====\n".join(out))
    assert not failures, "\n\n".join(failures)


def test_text_search_ranks_and_needs_every_word(qstore):
    df = qstore.query(
        "SELECT a.text, a.relevance FROM annotations('comment') a "
        "WHERE a.text MATCHES 'Black GLOVE' ORDER BY a.relevance DESC"
    )
    assert df["text"].to_list() == [
        "black glove, black glove again",  # both words twice: ranked first
        "the black glove should be white",
    ]
    assert df["relevance"][0] > df["relevance"][1] > 0
    none = qstore.query("SELECT a.text FROM annotations('comment') a WHERE a.text MATCHES 'zebra'")
    assert none.height == 0
    # without MATCHES the relevance is NULL
    assert (
        qstore.query("SELECT a.relevance FROM annotations('comment') a")["relevance"].null_count()
        == 4
    )


def test_an_edit_is_seen_by_the_next_query_and_search(qstore):
    ann = qstore.annotations
    i = ann.add("comment", "film2", 1.0, 1.2, text="purple umbrella", author="t")
    q = "SELECT a.text FROM annotations('comment') a WHERE a.text MATCHES 'umbrella'"
    assert qstore.query(q)["text"].to_list() == ["purple umbrella"]
    ann.edit(i, author="t", text="purple hat")
    assert qstore.query(q).height == 0
    ann.remove(i, author="t")
    assert i not in qstore.query("SELECT a.id FROM annotations('comment') a")["id"].to_list()


def test_spatial_functions_against_python(qstore):
    df = qstore.query(
        "SELECT a.text, area(a.box) AS area, iou(a.box, box(0.1, 0.1, 0.4, 0.6)) AS iou "
        "FROM annotations('comment') a WHERE a.box IS NOT NULL ORDER BY a.start_s"
    )
    for (_, _, _, box, _, _), (area, iou) in zip(
        sorted((c for c in COMMENTS if c[3]), key=lambda c: c[1]), zip(df["area"], df["iou"])
    ):
        x0, y0, x1, y1 = box
        assert area == pytest.approx((x1 - x0) * (y1 - y0))
        ix = max(0.0, min(x1, 0.4) - max(x0, 0.1)) * max(0.0, min(y1, 0.6) - max(y0, 0.1))
        assert iou == pytest.approx(ix / ((x1 - x0) * (y1 - y0) + 0.15 - ix))


def test_errors_are_clear(qstore):
    for query, error, message in [
        ("SELECT * FROM annotations('coment') a", ResolveError, "did you mean 'comment'"),
        ("SELECT * FROM annotations a", AqlError, "annotations need their type"),
        (
            "SELECT a.start_s FROM annotations('comment') a WHERE a.start_s MATCHES 'x'",
            AqlTypeError,
            "MATCHES searches a text column",
        ),  # fmt: skip
        ("SELECT area(a.text) FROM annotations('comment') a", AqlTypeError, "must be box"),
        ("SELECT a.index FROM annotations('comment') a", ResolveError, "no column 'index'"),
        ("SELECT bucket(a, -1) FROM annotations('comment') a", AqlError, "positive number"),
        (
            "SELECT bucket(a, 1.0), bucket(a, 0.5) FROM annotations('comment') a",
            AqlError,
            "one width per entity set: a is bucketed by 1 s and by 0.5 s",
        ),  # fmt: skip
        (
            "SELECT a.text FROM annotations('comment') a WHERE a.text MATCHES 3",
            AqlError,
            "expected one of: \\$parameter, string",
        ),  # fmt: skip
    ]:
        with pytest.raises(error, match=message):
            qstore.query(query)


def test_explain_shows_sources_and_search(qstore):
    text = qstore.explain(
        "SELECT a.text FROM annotations('subjects') a JOIN annotations('comment') c "
        "ON a.box OVERLAPS c.box WHERE c.text MATCHES 'glove'"
    )
    assert "EntityScan annotations('subjects') AS a OF [all assets]" in text
    assert "annotations(subjects) AS a: 0 by people (catalog), 1 model run(s)" in text
    assert "detector@1 run" in text
    assert "text search: c.text MATCHES 'glove' (tantivy, BM25)" in text


def test_doc_examples_return_rows(qstore):
    blocks = [b.strip() for b in re.findall(r"```aql\n(.*?)```", DOC.read_text(), re.S)]
    mine = [b for b in blocks if "annotations(" in b]
    assert len(mine) >= 8
    for text in mine:
        assert qstore.query(text).height > 0, text


def test_nearest_over_a_vector_field(qstore):
    ann = qstore.annotations
    ann.add("faces", "film2", 0.0, 0.2, character="C", vector=[0.9, 0.1, 0.0], author="t")
    ann.add("faces", "film2", 0.3, 0.5, character="D", vector=[0.0, 0.0, 1.0], author="t")
    doc = re.search(r"    (SELECT f.character, f.score .*? BY vector)\n", DOC.read_text()).group(1)
    df = qstore.query(doc)
    assert df["character"].to_list()[0] == "C"  # [0.9, 0.1, 0] is closest to A's [1, 0, 0]
    assert df.height == 2 and df["score"][0] == pytest.approx(0.9 / (0.82**0.5), abs=1e-5)
    assert "face_a" not in qstore.query(doc.replace("f.character", "f.id"))["id"].to_list()
    scoped = qstore.query(doc.replace("f NEAREST", "f OF 'film1' NEAREST"))
    assert scoped["character"].to_list() == ["B"]
    with pytest.raises(AqlTypeError, match="declares no vector"):
        qstore.query("SELECT * FROM annotations('comment') c NEAREST 2 TO annotation 'x' BY vector")
    with pytest.raises(AqlError, match="no annotation of the set has that id"):
        qstore.query("SELECT * FROM annotations('faces') f NEAREST 2 TO annotation 'zz' BY vector")


def spanned(start: float, end: float, width: float) -> list[int]:
    """The buckets a span meets, in exact arithmetic: k * w < end and (k + 1) * w > start (a
    span of no length: the bucket of its start)."""
    s, e, w = (Fraction(str(x)) for x in (start, end, width))
    first = math.floor(s / w)
    return [first] if s == e else [k for k in range(first, math.ceil(e / w)) if k * w < e]


def test_bucket_counts_every_bucket_a_span_meets(qstore):
    ann = qstore.annotations
    added = {  # the 3.2 s - 6.5 s in 1-s buckets (3, 4, 5, 6), at a quarter of the scale
        "span a": (0.8, 1.625),
        "span b": (0.5, 1.0),  # ends on a bucket's edge: not in the next one
        "span c": (1.0, 1.0),  # no length: its start's bucket
    }
    ids = [ann.add("comment", "film1", s, e, text=t, author="t") for t, (s, e) in added.items()]
    try:
        df = qstore.query(
            "SELECT a.text, bucket(a, 0.25) AS b FROM annotations('comment') a "
            "WHERE a.text LIKE 'span %' ORDER BY a.text, b"
        )
        got = {t: df.filter(pl.col("text") == t)["b"].to_list() for t in added}
        assert got == {"span a": [3, 4, 5, 6], "span b": [2, 3], "span c": [4]}
        # every comment, counted per 0.1-s bucket (0.3 / 0.1 is bucket 3, not 2.999...)
        counts = qstore.query(
            "SELECT a.asset, bucket(a, 0.1) AS b, count(*) AS n FROM annotations('comment') a "
            "GROUP BY a.asset, bucket(a, 0.1)"
        )
        want: dict[tuple[str, int], int] = {}
        rows = qstore.query("SELECT a.asset, a.start_s, a.end_s FROM annotations('comment') a")
        for asset, s, e in rows.iter_rows():
            for k in spanned(s, e, 0.1):
                want[asset, k] = want.get((asset, k), 0) + 1
        assert {(a, b): n for a, b, n in counts.iter_rows()} == want
    finally:
        for i in ids:
            ann.remove(i, author="t")


def test_two_types_in_the_same_second_across_a_span(qstore):
    """A face seen from 0.2 s to 1.15 s and a comment at 1.05 s share second 1: the face
    starts in second 0, so counting start buckets alone would miss them."""
    ann = qstore.annotations
    face = ann.add("faces", "film1", 0.2, 1.15, character="X", author="t")
    note = ann.add("comment", "film1", 1.05, 1.1, text="late note", author="t")
    try:
        df = qstore.query(
            "SELECT f.character, c.text, bucket(f, 1.0) AS second FROM annotations('faces') f "
            "JOIN annotations('comment') c ON f.asset = c.asset "
            "AND bucket(f, 1.0) = bucket(c, 1.0) "
            "WHERE f.character = 'X' AND c.text = 'late note'"
        )
        assert df.rows() == [("X", "late note", 1)]
    finally:
        ann.remove(face, author="t")
        ann.remove(note, author="t")


def test_matches_takes_a_parameter(qstore):
    q = "SELECT a.text, a.relevance FROM annotations('comment') a WHERE a.text MATCHES {} "
    q += "ORDER BY a.relevance DESC"
    literal = qstore.query(q.format("'black glove'"))
    bound = qstore.query(q.format("$words"), {"words": "Black  GLOVE"})
    assert bound.rows() == literal.rows() and bound.height == 2
    # user input is words, never query text: quotes and operators are only characters
    assert qstore.query(q.format("$w"), {"w": "glove' OR 'x"}).height == 0
    assert (
        qstore.query(q.format("$w"), {"w": "+glove -black"})["text"].to_list()
        == literal["text"].to_list()
    )
    with pytest.raises(AqlTypeError, match="MATCHES takes words"):
        qstore.query(q.format("$w"), {"w": 3})
    with pytest.raises(AqlError, match="no value for \\$w"):
        qstore.query(q.format("$w"))


def test_two_matches_on_one_set(qstore):
    base = "SELECT a.text, a.author, a.relevance FROM annotations('comment') a WHERE "
    text = qstore.query(base + "a.text MATCHES 'glove'")
    who = qstore.query(base + "a.author MATCHES 'ana'")
    both = qstore.query(base + "a.text MATCHES 'glove' AND a.author MATCHES 'ana'")
    either = qstore.query(base + "a.text MATCHES 'cut' OR a.author MATCHES 'ana'")
    assert sorted(both["text"]) == ["glove on the left", "the black glove should be white"]
    assert sorted(either["text"]) == [
        "glove on the left",
        "nice cut here",
        "the black glove should be white",
    ]
    score = {r[0]: r[2] for r in text.rows()}
    for t, _author, rel in both.rows():  # relevance: the sum of the scores that matched
        assert rel == pytest.approx(score[t] + dict(zip(who["text"], who["relevance"]))[t])
    assert dict(zip(either["text"], either["relevance"]))["nice cut here"] > 0


def test_a_scoped_search_first_does_not_narrow_the_next_one(qstore):
    """The type's index holds all its live rows whatever the first query's OF (it was once
    built from the scoped rows and reused by an unscoped search: film1's rows went missing)."""
    ann = qstore.annotations
    i = ann.add("comment", "film2", 0.1, 0.2, text="another glove", author="t")  # a new index
    try:
        q = "SELECT a.asset, a.text FROM annotations('comment') a {}WHERE a.text MATCHES 'glove'"
        assert set(qstore.query(q.format("OF 'film2' "))["asset"]) == {"film2"}
        assert set(qstore.query(q.format(""))["asset"]) == {"film1", "film2"}
    finally:
        ann.remove(i, author="t")

"""The README's AQL examples run as written against the quick start's store
(examples/basic/features.py applied over two clips, the first aliased ``film1``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import amberlite
from amberlite.query import run_query

ROOT = Path(__file__).resolve().parent.parent


def readme_queries() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Querying with AQL", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r'amberlite --store S (?:query|explain) "(.*?)"', section, re.S)
    return [" ".join(q.split()) for q in found]


def test_the_readme_has_aql_examples():
    assert len(readme_queries()) >= 3


@pytest.mark.parametrize("query", readme_queries())
def test_readme_aql_example_runs(query, tmp_path, media_dir):
    store = amberlite.open(tmp_path / "store")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], aliases=["film1", "film2"])
    store.apply(ROOT / "examples" / "basic" / "features.py")
    df = run_query(store, query)
    assert df.height > 0

"""REPL completion depends on where the cursor is: entity sets after FROM/JOIN, asset aliases
after OF, dot-commands after a leading `.`, keywords and features elsewhere."""

from __future__ import annotations

from prompt_toolkit.document import Document
from test_query_support import make_store

from amberlite.repl import completer


def complete(c, text):
    return [x.text for x in c.get_completions(Document(text), None)]


def test_completion_is_context_aware(tmp_path, media_dir):
    c = completer(make_store(tmp_path, media_dir))
    after_from = complete(c, "SELECT brightness FROM ")
    assert {"assets", "frames", "shots"} <= set(after_from)
    assert "SELECT" not in after_from
    assert complete(c, "SELECT id FROM sh") == ["shots"]
    assert complete(c, "SELECT a.id FROM shots a JOIN ") == complete(c, "SELECT 1 FROM ")
    assert complete(c, "SELECT id FROM shots OF ") == ["'film1'", "'film2'"]
    assert complete(c, "SELECT id FROM shots OF 'film2") == ["'film2'"]
    assert complete(c, "SELECT id FROM shots OF ('film1', ") == ["'film1'", "'film2'"]
    assert ".timer" in complete(c, ".t") and complete(c, ".")[:1] == [".explain"]
    elsewhere = complete(c, "SELECT bri")
    assert elsewhere == ["brightness"]
    assert "WHERE" in complete(c, "SELECT id FROM shots WH")

"""A pinned catalog serves a thread's reads from one connection, and writes still work."""

from __future__ import annotations

import threading

from amberlite.catalog import Catalog


def test_pinned_reads_share_a_connection_and_see_writes(tmp_path):
    cat = Catalog(tmp_path)
    with cat.pinned():
        with cat.read() as a, cat.read() as b:
            assert a is b  # one connection for the block
        with cat.write() as con:  # releases the shared lock first (no self-deadlock)
            con.execute("INSERT INTO meta VALUES ('k', 'v1')")
        with cat.read() as c:
            assert c is not a
            assert c.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v1",)
        seen = []

        def other_thread() -> None:  # another thread reads and writes as usual
            with cat.write() as con:
                con.execute("UPDATE meta SET value = 'v2' WHERE key = 'k'")
            with cat.read() as con:
                seen.append(con.execute("SELECT value FROM meta WHERE key = 'k'").fetchone())

        with cat.read():
            pass
        cat._unpin()  # the other thread's exclusive write needs this thread's shared lock
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(timeout=30)
        assert not t.is_alive() and seen == [("v2",)]
    with cat.read() as d:  # unpinned again: a fresh connection per read
        assert d.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v2",)

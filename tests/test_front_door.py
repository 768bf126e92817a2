"""The front door: a user's mistake at the command line gets one ``error: ...`` line and exit
status 2, never a traceback, and never a store created where none was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from amberlite.cli import main


def cli(store: Path | str, *args: str):
    r = CliRunner().invoke(main, ["--store", str(store), *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def refused(r, *words: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("error: "), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("query", "SHOW ASSETS"),
        ("get", "x"),
        ("explain", "SHOW ASSETS"),
        ("materialize", "x"),
        ("features",),
        ("assets",),
        ("replicate", "status"),
        ("compact",),
    ],
)
def test_read_only_commands_never_create_a_store(tmp_path, args):
    path = tmp_path / "typo"
    refused(cli(path, *args), f"no amberlite store at {path}", "init")
    assert not path.exists()


def test_read_only_command_in_a_folder_of_footage_writes_nothing(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    refused(cli(tmp_path, "status"), "no amberlite store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_init_refuses_a_folder_holding_other_files(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    refused(cli(tmp_path, "init"), "holding other files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_init_needs_an_existing_parent(tmp_path):
    path = tmp_path / "no" / "such" / "dir"
    refused(cli(path, "init"), "does not exist")
    assert not (tmp_path / "no").exists()


def test_store_path_that_is_a_file_is_refused(tmp_path):
    r = cli(tmp_path / "s", "init")
    assert r.exit_code == 0 and "created store at" in r.output
    refused(cli(tmp_path / "s" / "catalog.duckdb", "status"), "is a file", "--store")
    refused(cli(tmp_path / "s" / "catalog.duckdb", "init"), "is a file")
    r = cli(tmp_path / "s", "init")
    assert r.exit_code == 0 and "store exists at" in r.output
    assert cli(tmp_path / "s", "status").exit_code == 0


def test_store_path_that_cannot_be_created_is_a_message(tmp_path):
    refused(cli("/proc/amberlite-x", "init"), "/proc/amberlite-x")
    refused(cli("/proc/amberlite-x", "status"), "no amberlite store")


def test_python_open_creates_unless_asked_not_to(tmp_path):
    import amberlite
    from amberlite.errors import StoreError

    with pytest.raises(StoreError, match="no amberlite store"):
        amberlite.open(tmp_path / "a", create=False)
    assert not (tmp_path / "a").exists()
    amberlite.open(tmp_path / "a" / "b")
    assert amberlite.open(tmp_path / "a" / "b", create=False).status()["assets"] == 0


def test_ingest_alias_that_is_or_looks_like_an_asset_id_is_refused(tmp_path, media_dir):
    store = tmp_path / "s"
    r = cli(store, "ingest", str(media_dir / "clip_a.mp4"))
    assert r.exit_code == 0, r.output
    import amberlite

    first = amberlite.open(store).assets()["asset_id"][0]
    refused(cli(store, "ingest", str(media_dir / "clip_b.mp4"), "--alias", first), "id")
    refused(cli(store, "ingest", str(media_dir / "clip_b.mp4"), "--alias", "ab" * 16), "id")
    assert amberlite.open(store).assets().height == 1


def test_ingest_alias_count_is_checked_before_ingesting(tmp_path, media_dir):
    a, b = str(media_dir / "clip_a.mp4"), str(media_dir / "clip_b.mp4")
    refused(cli(tmp_path / "s", "ingest", a, b, "--alias", "onlyone"), "1 alias(es) for 2")
    import amberlite

    assert amberlite.open(tmp_path / "s").assets().height == 0


def test_ingest_of_a_directory_or_a_symlink_loop_says_so(tmp_path):
    (tmp_path / "footage").mkdir()
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    r = cli(tmp_path / "s", "ingest", str(tmp_path / "footage"), str(loop))
    assert r.exit_code == 1
    assert "footage: is a directory" in r.output and "watch" in r.output
    assert "loop.mp4: symlink loop" in r.output

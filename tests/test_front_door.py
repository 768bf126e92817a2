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

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


def test_a_file_named_like_an_asset_id_gets_an_alias_that_is_not_one(tmp_path, media_dir):
    import shutil

    import amberlite

    store = tmp_path / "s"
    assert cli(store, "ingest", str(media_dir / "clip_a.mp4")).exit_code == 0
    first = amberlite.open(store).assets()["asset_id"][0]
    named = tmp_path / f"{first}.mp4"  # clip_b saved under clip_a's id
    shutil.copy(media_dir / "clip_b.mp4", named)
    r = cli(store, "ingest", str(named))
    assert r.exit_code == 0 and f"ingested asset-{first}" in r.output, r.output
    s = amberlite.open(store)
    assert s.query(f"SELECT alias FROM assets OF '{first}'")["alias"].to_list() == ["clip_a"]


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


HEADER = "import pyarrow as pa\nfrom amberlite import feature, segmenter\n\n"


def _apply(tmp_path, body: str, *flags: str):
    store = tmp_path / "s"
    if not store.exists():
        assert cli(store, "init").exit_code == 0
    path = tmp_path / "defs.py"
    path.write_text(HEADER + body)
    return cli(store, "apply", str(path), *flags)


def test_apply_refuses_a_version_the_catalog_cannot_hold(tmp_path):
    body = (
        "@feature(entity='asset', version=10**30, output=pa.float32())\ndef f(a):\n    return 1.0\n"
    )
    refused(_apply(tmp_path, body), "version must be a positive int")


def test_apply_refuses_an_unknown_entity_type(tmp_path):
    body = "@feature(entity='shoot', output=pa.float32())\ndef f(s):\n    return 1.0\n"
    refused(_apply(tmp_path, body), "unknown entity type 'shoot'", "shot")


def test_apply_accepts_an_entity_type_a_segmenter_in_the_file_produces(tmp_path):
    body = (
        "@segmenter(produces='scene')\ndef scenes(a):\n    return [(0, 1)]\n\n"
        "@feature(entity='scene', output=pa.float32())\ndef f(s):\n    return 1.0\n"
    )
    r = _apply(tmp_path, body)
    assert r.exit_code == 0, r.output


def test_apply_refuses_a_function_that_cannot_take_its_inputs(tmp_path):
    body = (
        "@feature(entity='asset', output=pa.float32())\ndef g(a):\n    return 1.0\n\n"
        "@feature(entity='asset', output=pa.float32(), inputs=['g'])\n"
        "def f(a):\n    return 1.0\n"
    )
    refused(_apply(tmp_path, body), "f@1", "cannot be called as f(entity, g=...)")


def test_apply_refuses_the_same_function_name_twice(tmp_path):
    one = "@feature(entity='asset', output=pa.float32())\ndef f(a):\n    return 1.0\n\n"
    refused(_apply(tmp_path, one + one.replace("1.0", "2.0")), "'f' is defined twice")


@pytest.mark.parametrize("name", ["score", "start_s", "width", "ref"])
def test_apply_refuses_a_feature_named_like_an_entity_column(tmp_path, name):
    body = f"@feature(entity='asset', output=pa.float32())\ndef {name}(a):\n    return 1.0\n"
    refused(_apply(tmp_path, body), f"{name!r} is the name of an entity column")


def test_entity_columns_list_covers_the_planner_columns():
    from amberlite.define.registry import ENTITY_COLUMNS
    from amberlite.plan.build import BASE_COLUMNS, EXTRA_COLUMNS

    names = set(BASE_COLUMNS).union(*EXTRA_COLUMNS.values(), {"score"})
    assert names <= ENTITY_COLUMNS


def test_apply_dry_run_exits_2_on_a_change_apply_would_refuse(tmp_path):
    body = "@feature(entity='asset', output=pa.float32())\ndef f(a):\n    return 1.0\n"
    assert _apply(tmp_path, body).exit_code == 0
    r = _apply(tmp_path, body.replace("1.0", "2.0"), "--dry-run")
    refused(r, "refused: f@1")
    assert "f@1" in r.stdout
    r = _apply(tmp_path, body.replace("1.0", "2.0"), "--dry-run", "--force")
    assert r.exit_code == 0


def test_materialize_where_every_value_failed_shows_why_and_exits_1(tmp_path, media_dir):
    store = tmp_path / "s"
    a, b = str(media_dir / "clip_a.mp4"), str(media_dir / "clip_b.mp4")
    assert cli(store, "ingest", a, b).exit_code == 0
    body = (
        "@feature(entity='asset', output=pa.float32())\n"
        "def boom(a):\n    raise ValueError('the lens cap is on, ' + 'x' * 200)\n"
    )
    assert _apply(tmp_path, body).exit_code == 0
    r = cli(store, "materialize", "boom")
    assert r.exit_code == 1, r.output
    assert "2 failed" in r.output
    assert "boom@1: 2 entities failed (e.g. clip_a)" in r.output
    assert "ValueError: the lens cap is on, " + "x" * 200 in r.output  # the full message
    r = cli(store, "materialize", "boom")  # nothing new tried: still nothing stored
    assert r.exit_code == 1 and "2 skipped" in r.output and "lens cap" in r.output
    r = cli(store, "status")
    assert r.exit_code == 0
    assert "failures (2)" in r.output
    assert r.output.count("lens cap") == 1 and "x" * 200 in r.output
    run = next(ln for ln in r.output.splitlines() if "boom@1" in ln and "request" in ln)
    assert "| failed " in run  # the run's state: nothing succeeded


NONE_BODY = (
    "@feature(entity='asset', output=pa.float32(){flag})\n"
    "def maybe(a):\n    return None if a.alias == 'clip_a' else 1.0\n"
)


def test_a_feature_returning_none_fails_unless_nullable(tmp_path, media_dir):
    import amberlite

    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    path = tmp_path / "defs.py"
    path.write_text(HEADER + NONE_BODY.format(flag=""))
    store.apply(path)
    stats = store.materialize("maybe")
    assert (stats.computed, stats.failed) == (1, 1)
    [error] = store.failures("maybe")["error"].to_list()
    assert error.startswith("returned None; declare nullable=True")


def test_nullable_stores_a_null_and_is_part_of_the_declaration(tmp_path, media_dir):
    import amberlite

    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    path = tmp_path / "defs.py"
    path.write_text(HEADER + NONE_BODY.format(flag=""))
    store.apply(path)
    path.write_text(HEADER + NONE_BODY.format(flag=", nullable=True"))
    [change] = store.plan_apply(path)
    assert change.resolution == "changed"  # the flag changes what the feature stores
    store2 = amberlite.open(tmp_path / "t")
    store2.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store2.apply(path)
    stats = store2.materialize("maybe")
    assert (stats.computed, stats.failed) == (2, 0)
    got = dict(store2.get("maybe", compute=False).select("asset", "maybe").rows())
    assert got == {"clip_a": None, "clip_b": 1.0}


def test_a_batch_feature_returning_none_fails_those_entities_alone(tmp_path, media_dir):
    import amberlite

    store = amberlite.open(tmp_path / "s")
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    path = tmp_path / "defs.py"
    path.write_text(
        HEADER + "@feature(entity='asset', output=pa.float32(), batch=8)\n"
        "def maybe(assets):\n    return [None if a.alias == 'clip_a' else 1.0 for a in assets]\n"
    )
    store.apply(path)
    stats = store.materialize("maybe")
    assert (stats.computed, stats.failed) == (1, 1)


DROP_BODY = (
    "@feature(entity='asset', output=pa.float32())\ndef base(a):\n    return 1.0\n\n"
    "@feature(entity='asset', output=pa.float32(), inputs=['base'])\n"
    "def top(a, base):\n    return base + 1\n"
)


def test_drop_refuses_while_others_depend_then_removes_values(tmp_path, media_dir):
    import amberlite

    store = tmp_path / "s"
    assert cli(store, "ingest", str(media_dir / "clip_a.mp4")).exit_code == 0
    assert _apply(tmp_path, DROP_BODY).exit_code == 0
    assert cli(store, "materialize", "top").exit_code == 0
    refused(cli(store, "drop", "base"), "top@1")
    r = cli(store, "drop", "top@1")
    assert r.exit_code == 0 and "dropped top@1" in r.output
    r = cli(store, "drop", "base")
    assert r.exit_code == 0 and "dropped base@1" in r.output
    st = amberlite.open(store)
    assert "base" not in st.features()["name"].to_list()
    refused(cli(store, "get", "base"), "unknown feature 'base'")
    assert list((st.root / "values").rglob("base@1/*/*.parquet"))
    assert cli(store, "compact").exit_code == 0
    assert not list((st.root / "values").rglob("base@1/*/*.parquet"))
    r = _apply(tmp_path, DROP_BODY)  # applies again as new
    assert r.exit_code == 0 and "base@1: new feature" in r.output, r.output


def test_drop_refuses_while_a_replica_follows_it(tmp_path, media_dir):
    store = tmp_path / "s"
    assert cli(store, "ingest", str(media_dir / "clip_a.mp4")).exit_code == 0
    body = (
        "import numpy as np\n\n"
        "@feature(entity='asset', output=pa.list_(pa.float32(), 4))\n"
        "def emb(a):\n    return np.ones(4, dtype=np.float32)\n"
    )
    assert _apply(tmp_path, body).exit_code == 0
    assert cli(store, "materialize", "emb").exit_code == 0
    r = cli(store, "replicate", "add", "emb", "--to", "hnsw", "--M", "8", "--ef", "20")
    assert r.exit_code == 0, r.output
    refused(cli(store, "drop", "emb"), "replica")
    import amberlite

    feats = amberlite.open(store).features()
    assert feats.filter(feats["name"] == "emb")["rows_stored"].to_list() == [1]  # rolled back
    # the way out the refusal names: remove the replica (its index goes, values stay), drop
    index_dir = next((store / "replicas").rglob("hnsw.json")).parent
    r = cli(store, "replicate", "remove", "emb")
    assert r.exit_code == 0 and "removed 1 replica(s) of emb" in r.output, r.output
    assert not list(index_dir.glob("*.bin")) and not (index_dir / "hnsw.json").exists()
    assert "no replicas" in cli(store, "replicate", "status").output
    refused(cli(store, "replicate", "remove", "emb"), "no replica of emb")
    r = cli(store, "drop", "emb")
    assert r.exit_code == 0 and "dropped emb@1" in r.output, r.output


def test_drop_refuses_a_builtin(tmp_path):
    assert cli(tmp_path / "s", "init").exit_code == 0
    refused(cli(tmp_path / "s", "drop", "shots"), "built-in")
    refused(cli(tmp_path / "s", "drop", "nosuch"), "unknown feature 'nosuch'")

"""The training-data path: store.dataset streams stored values into torch tensors, computes
what is missing first, shards across DataLoader workers and data-parallel ranks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

from amberlite.dataset import to_torch
from amberlite.errors import ResolveError

VECS = """
import numpy as np
import pyarrow as pa
from amberlite import feature

@feature(entity="frame", output=pa.list_(pa.float32(), 4), batch=16)
def fvec(frames):
    return np.array([[f.n, f.n + 0.5, len(f.asset.alias), 1.0] for f in frames], np.float32)

@feature(entity="frame", output=pa.string())
def label(frame):
    return f"f{frame.n}"
"""


@pytest.fixture
def vec_store(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store.apply(defs(VECS))
    return store


def _collect(batches) -> tuple[list[str], torch.Tensor]:
    ids, vals = [], []
    for b in batches:
        ids += b["entity_id"]
        vals.append(b["fvec"])
    return ids, torch.cat(vals)


def test_dataset_computes_missing_and_matches_get(vec_store):
    ds = vec_store.dataset("fvec", batch_size=16)  # nothing stored yet: computed first
    batches = list(ds)
    assert [len(b["entity_id"]) for b in batches] == [16] * 6 + [4]
    assert all(b["fvec"].dtype == torch.float32 and b["fvec"].shape[1] == 4 for b in batches)
    ids, vals = _collect(batches)
    got = vec_store.get("fvec", compute=False)
    expect = dict(zip(got["id"], got["fvec"].to_list()))
    assert sorted(ids) == sorted(expect) and len(ids) == 100
    assert np.allclose(vals.numpy(), np.array([expect[i] for i in ids]))
    assert ds.num_rows == 100 and len(ds.files) > 1
    assert list(vec_store.dataset("fvec", batch_size=16, drop_last=True).__iter__()).__len__() == 6


def test_dataloader_workers_and_ranks_read_each_row_once(vec_store):
    vec_store.materialize("fvec")
    ds = vec_store.dataset("fvec", batch_size=8, prefetch=2)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    ids, vals = _collect(loader)
    assert len(ids) == 100 and len(set(ids)) == 100 and vals.shape == (100, 4)
    ranks = [_collect(ds.shard(r, 2))[0] for r in range(2)]
    assert set(ranks[0]).isdisjoint(ranks[1]) and len(ranks[0]) + len(ranks[1]) == 100
    shuffled = vec_store.dataset("fvec", batch_size=8, shuffle=True, seed=3)
    assert sorted(_collect(shuffled)[0]) == sorted(ids)


def test_asset_scope_and_non_tensor_values(vec_store):
    ds = vec_store.dataset("fvec", ["clip_b"], batch_size=64)
    ids, vals = _collect(ds)
    assert len(ids) == 40 and (vals[:, 2] == len("clip_b")).all()
    (batch,) = list(vec_store.dataset("label", ["clip_b"], batch_size=100))
    assert sorted(batch["label"]) == sorted(f"f{n}" for n in range(40))  # strings stay lists


def test_early_stop_ends_the_prefetch_thread(vec_store):
    import threading

    ds = vec_store.dataset("fvec", batch_size=4, prefetch=1)
    it = iter(ds)
    next(it)
    it.close()
    assert not any(t.name == "amberlite-prefetch" for t in threading.enumerate())


def test_to_torch_shapes():
    nested = pa.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], pa.list_(pa.list_(pa.int16(), 2), 2))
    assert to_torch(nested).shape == (2, 2, 2)
    assert to_torch(pa.array([True, False])).dtype == torch.bool
    sliced = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], pa.list_(pa.float32(), 2)).slice(1)
    assert to_torch(sliced).tolist() == [[3.0, 4.0], [5.0, 6.0]]
    assert to_torch(pa.array([[1], [2, 3]])) == [[1], [2, 3]]


def test_query_dataset_streams_the_query_result(vec_store):
    text = (
        "SELECT id, asset, fvec, label, n * 2 AS twice FROM frames OF 'clip_b' "
        "WHERE n >= 10 ORDER BY n"
    )
    assert vec_store.status()["features"].filter(pl.col("name") == "fvec")[
        "rows_stored"
    ].to_list() == [0]
    ds = vec_store.dataset(text, batch_size=8)  # computes fvec and label for clip_b first
    batches = list(ds)
    assert [len(b["id"]) for b in batches] == [8, 8, 8, 6]
    assert set(batches[0]) == {"id", "asset", "fvec", "label", "twice"}
    want = vec_store.query(text)
    got_ids = [i for b in batches for i in b["id"]]
    assert got_ids == want["id"].to_list()  # ORDER BY is kept
    vals = torch.cat([b["fvec"] for b in batches])
    assert vals.dtype == torch.float32 and vals.shape == (30, 4)
    assert np.allclose(vals.numpy(), np.array(want["fvec"].to_list()))
    assert torch.cat([b["twice"] for b in batches]).tolist() == want["twice"].to_list()
    assert [x for b in batches for x in b["label"]] == want["label"].to_list()
    # only the values: text columns are left out
    assert set(next(iter(vec_store.dataset(text, ids=False)))) == {"fvec", "twice"}

    # an unchanged store reuses the file; a change makes a new one
    again = vec_store.dataset(text)
    assert again.files == ds.files
    vec_store.materialize("fvec")
    assert vec_store.dataset(text).files != ds.files

    # shards and DataLoader workers split the row groups: every row once
    from amberlite import dataset as dmod

    old = dmod.QUERY_ROW_GROUP
    dmod.QUERY_ROW_GROUP = 4
    try:
        small = vec_store.dataset("SELECT id, fvec FROM frames", batch_size=4)
    finally:
        dmod.QUERY_ROW_GROUP = old
    assert len(small._units) == 25
    loader = DataLoader(small, batch_size=None, num_workers=2)
    ids = [i for b in loader for i in b["id"]]
    assert len(ids) == 100 and len(set(ids)) == 100


def test_dataset_bad_input(vec_store):
    from amberlite.errors import AqlError

    with pytest.raises(ResolveError, match="feature name"):
        vec_store.dataset("fvec label")
    with pytest.raises(AqlError, match="SELECT"):
        vec_store.dataset("SHOW FEATURES")
    with pytest.raises(AqlError, match=r"line 1"):
        vec_store.dataset("SELECT id FROM frames WHERE")
    with pytest.raises(ResolveError, match="from the query"):
        vec_store.dataset("SELECT id FROM frames", assets=["clip_b"])
    with pytest.raises(ResolveError, match="no option"):
        vec_store.dataset("fvec", batchsize=3)
    with pytest.raises(ResolveError, match="unknown feature"):
        vec_store.dataset("fvex")
    with pytest.raises(ResolveError, match="shard"):
        vec_store.dataset("fvec").shard(2, 2)

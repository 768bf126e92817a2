"""store.dataset already yields batches: DataLoader(ds, batch_size=N) must fail with a clear
message instead of stacking batches into a transposed tensor, and len(ds) says why it has
no length."""

from __future__ import annotations

import pytest
from test_dataset import VECS
from torch.utils.data import DataLoader


@pytest.fixture
def vec_store(store, media_dir, defs):
    store.ingest([media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"])
    store.apply(defs(VECS))
    return store


def test_dataloader_with_a_batch_size_is_refused(vec_store):
    ds = vec_store.dataset("fvec", batch_size=8)
    with pytest.raises(TypeError, match=r"batch_size=None"):
        next(iter(DataLoader(ds, batch_size=4)))
    batch = next(iter(DataLoader(ds, batch_size=None)))  # the right use still works
    assert tuple(batch["fvec"].shape) == (8, 4)
    assert len(batch["entity_id"]) == 8


def test_len_of_a_dataset_explains_itself(vec_store):
    ds = vec_store.dataset("fvec", batch_size=8)
    with pytest.raises(TypeError, match=r"num_rows"):
        len(ds)
    assert ds.num_rows > 0

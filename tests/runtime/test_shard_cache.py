"""The in-memory shard cache: seals only a whole epoch, respects its limit, reshuffles by epoch."""

from __future__ import annotations

import numpy as np

from slimray.runtime.shard_cache import ShardCache


def _epoch(cache, n_batches=3, batch=4, start=0):
    for i in range(n_batches):
        rows = np.arange(start + i * batch, start + (i + 1) * batch)
        cache.add(rows[:, None].astype("float32"), rows.astype("int32"))
    cache.end_epoch()


def test_a_whole_epoch_is_cached_and_reshuffled_per_epoch():
    cache = ShardCache(2**20, batch_size=4, steps_per_epoch=3, seed=1)
    _epoch(cache)
    assert cache.complete
    one, two = list(cache.batches(1)), list(cache.batches(2))
    assert len(one) == 3 and all(b["x"].shape == (4, 1) for b in one)
    rows = sorted(np.concatenate([b["y"] for b in one]).tolist())
    assert rows == list(range(12))
    assert [b["y"].tolist() for b in one] != [b["y"].tolist() for b in two]
    assert [b["y"].tolist() for b in one] == [b["y"].tolist() for b in cache.batches(1)]
    for b in one:
        np.testing.assert_array_equal(b["x"][:, 0], b["y"])  # x and y stay paired


def test_a_partial_epoch_is_not_sealed():
    cache = ShardCache(2**20, batch_size=4, steps_per_epoch=3, seed=1)
    _epoch(cache, n_batches=2)
    assert not cache.complete
    _epoch(cache, n_batches=3)
    assert cache.complete


def test_over_the_limit_it_keeps_streaming():
    cache = ShardCache(limit_bytes=40, batch_size=4, steps_per_epoch=3, seed=1)
    _epoch(cache)
    assert not cache.complete and cache.overflowed
    assert not ShardCache(0, 4, 3, 1).complete


def test_a_cache_from_arrays_is_complete_and_serves_every_row_once_per_epoch():
    x, y = np.arange(12, dtype="float32")[:, None], np.arange(12, dtype="int32")
    cache = ShardCache.from_arrays(x, y, batch_size=4, steps_per_epoch=3, seed=5)
    assert cache.complete
    epoch0 = np.concatenate([b["y"] for b in cache.batches(0)])
    epoch1 = np.concatenate([b["y"] for b in cache.batches(1)])
    assert sorted(epoch0.tolist()) == list(range(12)) and not np.array_equal(epoch0, epoch1)

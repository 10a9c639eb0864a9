"""The tf-collective `Reducer` on one worker: the identity, bytes counted, a full `Reducer`."""

from __future__ import annotations

import numpy as np

from slimray.pruning import Reducer
from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer


def test_single_worker_reducer_is_the_identity():
    r = TFCollectiveReducer(rank=0, world_size=1)
    v = np.arange(5.0)
    np.testing.assert_array_equal(r.allreduce(v), v)
    assert r.bytes_reduced == 40


def test_the_tf_collective_reducer_is_a_full_reducer():
    assert isinstance(TFCollectiveReducer(rank=0, world_size=1), Reducer)

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


def test_the_mask_agreement_gives_up_on_a_peer_that_never_joins():
    """Regression: a collective had no timeout; a hung peer held every worker for ever."""
    import time

    import pytest
    import tensorflow as tf

    from slimray.pruning import PrunePlan
    from slimray.runtime.agreement import check_agreement

    alone = TFCollectiveReducer(rank=0, world_size=2, timeout_seconds=1.0)  # rank 1 never comes
    alone.device = "/device:CPU:0"  # this process is in no TF cluster: its own CPU
    start = time.perf_counter()
    with pytest.raises(tf.errors.DeadlineExceededError, match="timed out waiting for other workers"):
        check_agreement(PrunePlan({"conv1": (0, 2)}, {"conv1": 4}), alone, step=30)
    assert time.perf_counter() - start < 20

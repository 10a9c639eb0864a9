"""The Horovod `Reducer` without Horovod: one worker needs no collective, and bytes are counted."""

from __future__ import annotations

import numpy as np

from slimray.pruning import Reducer
from slimray.runtime.backends.horovod.reducer import HorovodReducer


def test_a_single_worker_horovod_reducer_is_the_identity_and_counts_bytes():
    reducer = HorovodReducer(world_size=1)
    values = np.arange(4.0)
    np.testing.assert_array_equal(reducer.allreduce(values), values)
    np.testing.assert_array_equal(reducer.allmax(values), values)
    assert reducer.bytes_reduced == 64
    assert isinstance(reducer, Reducer)

"""The one `Reducer` base: float64 in, bytes counted, one worker or an empty vector without a
collective, sum/min/max each reaching the backend's one primitive; it declares all it offers."""

from __future__ import annotations

import numpy as np
import pytest

from slimray.pruning import IdentityReducer, Reducer


class _Recording(Reducer):
    """Two workers where the other holds `other`; records what reached the primitive."""

    world_size = 2

    def __init__(self, other: np.ndarray):
        super().__init__()
        self.other, self.calls = other, []

    def _collective(self, values, op):
        self.calls.append((values.dtype, values.flags.c_contiguous, op))
        return {"sum": np.add, "min": np.minimum, "max": np.maximum}[op](values, self.other)


def test_sum_min_and_max_reach_the_one_primitive_as_contiguous_float64():
    reducer = _Recording(np.array([3.0, 0.0, 5.0]))
    mine = np.array([[1, 2, 3, 4]], dtype=np.int32)[:, ::-1][0, 1:]  # int32, not contiguous
    np.testing.assert_array_equal(reducer.allreduce(mine), [6.0, 2.0, 6.0])
    np.testing.assert_array_equal(reducer.allmin(mine), [3.0, 0.0, 1.0])
    np.testing.assert_array_equal(reducer.allmax(mine), [3.0, 2.0, 5.0])
    assert reducer.calls == [(np.float64, True, "sum"), (np.float64, True, "min"), (np.float64, True, "max")]
    assert reducer.bytes_reduced == 3 * 3 * 8


def test_an_empty_vector_needs_no_collective_but_one_worker_still_counts_its_bytes():
    reducer = _Recording(np.zeros(0))
    assert reducer.allreduce(np.zeros(0)).shape == (0,) and reducer.calls == []
    identity = IdentityReducer()
    values = np.arange(3.0)
    out = identity.allmax(values)
    np.testing.assert_array_equal(out, values)
    assert out is not values and identity.bytes_reduced == 24


def test_the_base_declares_everything_the_runtime_calls_and_needs_a_primitive():
    for name in ("allreduce", "allmin", "allmax"):
        assert callable(getattr(Reducer, name))
    assert {"world_size", "bytes_reduced"} <= set(Reducer.__annotations__)
    with pytest.raises(TypeError, match="_collective"):
        type("NoPrimitive", (Reducer,), {"world_size": 2})()

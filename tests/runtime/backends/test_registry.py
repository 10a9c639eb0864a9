"""The backend registry: every name the spec accepts has a backend, each gives Ray Train a
config without importing TensorFlow, and each backend's reducer is a full `Reducer`."""

from __future__ import annotations

import pytest

from slimray.core.spec import BACKENDS as SPEC_BACKENDS
from slimray.core.spec import SpecError, parse_spec
from slimray.pruning import Reducer
from slimray.runtime.backends import BACKENDS, get_backend
from slimray.runtime.backends.horovod import HorovodReducer
from slimray.runtime.collectives import TFCollectiveReducer


def test_the_spec_and_the_registry_name_the_same_backends():
    assert tuple(BACKENDS) == SPEC_BACKENDS
    assert parse_spec(
        {"model": {"source": "mlp"}, "data": {"source": "digits"}, "train": {"steps": 1}}
    ).backend == ("tf-collective")


def test_an_unknown_backend_is_refused_naming_the_field():
    with pytest.raises(
        SpecError, match=r"backend: Input should be 'tf-collective' or 'horovod' \(got 'mpi'\)"
    ):
        parse_spec(
            {
                "model": {"source": "mlp"},
                "data": {"source": "digits"},
                "train": {"steps": 1},
                "backend": "mpi",
            }
        )
    with pytest.raises(ValueError, match=r"backend: unknown 'mpi'; one of \['horovod', 'tf-collective'\]"):
        get_backend("mpi")


def test_every_backend_gives_ray_train_a_config_and_a_full_reducer():
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend.ray_config().backend_cls is not None
    assert isinstance(HorovodReducer(world_size=1), Reducer)
    assert isinstance(TFCollectiveReducer(rank=0, world_size=1), Reducer)


def test_a_single_worker_horovod_reducer_is_the_identity_and_counts_bytes():
    import numpy as np

    reducer = HorovodReducer(world_size=1)
    values = np.arange(4.0)
    np.testing.assert_array_equal(reducer.allreduce(values), values)
    np.testing.assert_array_equal(reducer.allmax(values), values)
    assert reducer.bytes_reduced == 64

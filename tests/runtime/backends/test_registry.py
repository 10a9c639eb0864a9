"""The backend registry: every name the spec accepts has a backend, each gives Ray Train a
config without importing TensorFlow, and each backend's reducer is a full `Reducer`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slimray.core.errors import BackendUnavailableError
from slimray.core.spec import BACKENDS as SPEC_BACKENDS
from slimray.core.spec import BUILT_IN_BACKENDS, SpecError, parse_spec
from slimray.pruning import Reducer
from slimray.runtime.backends import BACKENDS, backend_missing, get_backend
from slimray.runtime.backends.horovod.reducer import HorovodReducer
from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer


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
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend 'mpi' cannot run on this Ray cluster: unknown; one of \['horovod', 'tf-collective'\]",
    ) as caught:
        get_backend("mpi")
    assert caught.value.field == ("backend",) and caught.value.backend == "mpi"


def test_every_backend_gives_ray_train_a_config_and_a_full_reducer():
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend.ray_config().backend_cls is not None
    assert isinstance(HorovodReducer(world_size=1), Reducer)
    assert isinstance(TFCollectiveReducer(rank=0, world_size=1), Reducer)


def test_built_in_backends_lack_nothing_and_every_other_one_says_what_it_needs():
    """`core.spec.BUILT_IN_BACKENDS` is the one list of backends nothing need be asked about."""
    for name, backend in BACKENDS.items():
        if name in BUILT_IN_BACKENDS:
            assert backend_missing(name) is None
        else:
            assert "missing" in vars(backend), f"{name} must override WorkerBackend.missing"


def test_the_registry_and_the_ray_configs_load_no_tensorflow():
    """The driver and the Train controller use the registry; TensorFlow costs them ~6 s a job."""
    code = (
        "import sys; from slimray.runtime.backends import BACKENDS, backend_missing; "
        "[b.ray_config() for b in BACKENDS.values()]; backend_missing('tf-collective'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'horovod'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

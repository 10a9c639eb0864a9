"""Submitting and cancelling jobs without HTTP: a context around a real store and a Ray whose
answers are injected; the backend check, the policy, id minting and the reconciler's wake-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimray.core.errors import BackendUnavailableError, backend_unavailable_message
from slimray.core.jobstate import InvalidTransition, JobState
from slimray.core.spec import parse_spec
from slimray.service.api.context import build_context
from slimray.service.api.lifecycle import cancel_job, submit_job
from slimray.service.api.policy import PolicyError
from slimray.service.executor import RayUnavailable
from slimray.service.settings import get_settings
from slimray.service.store import UnknownJob

BASE = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 10}}
MISSING = "horovod is not installed (make horovod)"


class _Ray:
    """Answers the backend check (what is missing, or Ray is down); counts the questions."""

    def __init__(self, missing: str | None = MISSING, down: bool = False):
        self.missing, self.down, self.asked = missing, down, 0

    def check_backend(self, backend: str) -> str | None:
        self.asked += 1
        if self.down:
            raise RayUnavailable("connection refused")
        return self.missing


@pytest.fixture
def settings(tmp_path):
    return get_settings(api_token="t", db_path=tmp_path / "j.db", runs_root=tmp_path / "runs")


def _context(settings, ray: _Ray | None = None):
    return build_context(settings, ray or _Ray())


@pytest.fixture
def context(settings):
    context = _context(settings)
    yield context
    context.store.close()


def _woken(context) -> bool:
    woken = context.reconciler._wake.is_set()
    context.reconciler._wake.clear()
    return woken


def test_a_job_gets_an_id_its_run_directory_and_wakes_the_reconciler(context, settings):
    job = submit_job(context, parse_spec({**BASE, "name": "first"}))
    stored = context.store.get(job.id)
    assert stored.state == JobState.QUEUED and stored.name == "first"
    assert stored.spec["output"]["dir"] == str((Path(settings.runs_root) / job.id).resolve())
    assert _woken(context)
    assert submit_job(context, parse_spec(BASE)).id != job.id


def test_a_backend_the_cluster_lacks_is_refused_once_asked_and_nothing_is_stored(settings):
    ray = _Ray()
    context = _context(settings, ray)
    for _ in range(2):
        with pytest.raises(BackendUnavailableError) as err:
            submit_job(context, parse_spec({**BASE, "backend": "horovod"}))
        assert err.value.field == ("backend",)
        assert str(err.value) == backend_unavailable_message("horovod", MISSING)
    assert ray.asked == 1 and context.store.list()[1] == 0 and not _woken(context)
    submit_job(context, parse_spec(BASE))  # the built-in backend needs no question
    assert ray.asked == 1
    context.store.close()


def test_with_ray_down_the_backend_is_left_to_the_driver(settings):
    context = _context(settings, _Ray(down=True))
    job = submit_job(context, parse_spec({**BASE, "backend": "horovod"}))
    assert context.store.get(job.id).spec["backend"] == "horovod"
    context.store.close()


def test_the_policy_refuses_before_anything_is_stored(context):
    with pytest.raises(PolicyError) as err:
        submit_job(context, parse_spec({**BASE, "data": {"source": "../outside.npz"}}))
    assert [loc for loc, _ in err.value.problems] == [("data", "source")]
    assert context.store.list()[1] == 0


def test_a_local_runs_root_is_refused_once_the_reconciler_saw_several_nodes(context):
    context.reconciler.probe.nodes = 3
    with pytest.raises(PolicyError) as err:
        submit_job(context, parse_spec(BASE))
    [(loc, message)] = err.value.problems
    assert loc == ("output", "dir") and "3 nodes" in message and "SLIMRAY_RUNS_SHARED=true" in message


def test_cancel_once_then_conflict_and_unknown_ids(context):
    job = submit_job(context, parse_spec(BASE))
    _woken(context)
    assert cancel_job(context, job.id).state == JobState.CANCELLED and _woken(context)
    with pytest.raises(InvalidTransition, match="already cancelled"):
        cancel_job(context, job.id)
    with pytest.raises(UnknownJob):
        cancel_job(context, "nope")
    assert not _woken(context)

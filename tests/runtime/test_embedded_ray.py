"""An embedded Ray whose raylet misses Ray's fixed 30 s registration wait (a loaded machine: it
failed a cold `slimray run` in CI) is started once more, after the failed start's processes are
stopped; a second miss is a RayStartError that says so, with nothing left running."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest
import ray

from slimray.core.spec import parse_spec
from slimray.runtime.cluster import init_ray
from slimray.runtime.embedded_ray import RayStartError, start_embedded_ray

RAY_SAYS = ("The current node timed out during startup. This could happen because some of the raylet "
            "failed to startup or the GCS has become overloaded.")  # fmt: skip
SPEC = parse_spec({"name": "e", "model": {"source": "seed_cnn"}, "data": {"source": "mnist"},
                   "train": {"steps": 1}, "output": {"dir": "/tmp/never-written"}})  # fmt: skip


class _SlowRaylet:
    """Fault: the first `misses` calls of `ray.init` start a process standing for the failed
    start's raylet, then raise what Ray 2.60 raises when its 30 s wait runs out."""

    def __init__(self, misses: int, error: str = RAY_SAYS):
        self.misses, self.error, self.calls, self.leftovers = misses, error, 0, []
        self.real = ray.init

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls > self.misses:
            return self.real(**kwargs)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        self.leftovers.append(sleeper.pid)
        raise Exception(self.error)  # Ray's own type for it


@pytest.fixture
def slow_raylet(monkeypatch):
    """Install a `_SlowRaylet`; afterwards Ray is shut down and any stand-in still alive killed."""
    assert not ray.is_initialized()
    faults = []

    def install(misses: int, error: str = RAY_SAYS) -> _SlowRaylet:
        faults.append(_SlowRaylet(misses, error))
        monkeypatch.setattr(ray, "init", faults[-1])
        return faults[-1]

    yield install
    ray.shutdown()
    for pid in (pid for fault in faults for pid in fault.leftovers if psutil.pid_exists(pid)):
        psutil.Process(pid).kill()


def test_a_start_that_times_out_once_is_stopped_and_started_again(slow_raylet):
    fault = slow_raylet(misses=1)
    assert init_ray(None, SPEC) is True  # before: Ray's exception failed the job here
    assert ray.is_initialized() and fault.calls == 2
    assert ray.cluster_resources().get("CPU", 0) >= 1
    assert not any(psutil.pid_exists(pid) for pid in fault.leftovers)  # the failed start's processes


def test_a_start_that_times_out_every_time_says_so_and_leaves_nothing_running(slow_raylet):
    fault = slow_raylet(misses=5)
    with pytest.raises(RayStartError, match=r"did not register with its GCS within Ray's 30 s, 2 times"):
        start_embedded_ray(num_cpus=1)
    assert fault.calls == 2 and not ray.is_initialized()
    assert not any(psutil.pid_exists(pid) for pid in fault.leftovers)


def test_any_other_start_error_is_raised_at_once(slow_raylet):
    fault = slow_raylet(misses=5, error="port 6379 is in use")
    with pytest.raises(Exception, match="port 6379 is in use"):
        start_embedded_ray(num_cpus=1)
    assert fault.calls == 1 and psutil.pid_exists(fault.leftovers[0])  # nothing retried or stopped

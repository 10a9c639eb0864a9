"""An embedded Ray whose raylet misses Ray's fixed 30 s registration wait (a loaded machine: it
failed a cold `slimray run` in CI) is started again, up to three times, after the failed start's
processes are stopped; a third miss is a RayStartError that says so, with nothing left running."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest
import ray

from slimray.core.spec import parse_spec
from slimray.runtime import embedded_ray
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
    monkeypatch.setattr(embedded_ray, "PAUSE_SECONDS", 0.1)  # the pauses are for a loaded machine
    faults = []

    def install(misses: int, error: str = RAY_SAYS) -> _SlowRaylet:
        faults.append(_SlowRaylet(misses, error))
        monkeypatch.setattr(ray, "init", faults[-1])
        return faults[-1]

    yield install
    ray.shutdown()
    for pid in (pid for fault in faults for pid in fault.leftovers if psutil.pid_exists(pid)):
        psutil.Process(pid).kill()


def test_a_start_that_times_out_twice_is_stopped_and_started_again(slow_raylet):
    """Regression: a cold `slimray run` in the CI here timed out twice in a row, then failed."""
    fault = slow_raylet(misses=2)
    assert init_ray(None, SPEC) is True  # before: Ray's exception failed the job here
    assert ray.is_initialized() and fault.calls == 3
    assert ray.cluster_resources().get("CPU", 0) >= 1
    assert not any(psutil.pid_exists(pid) for pid in fault.leftovers)  # the failed start's processes


def test_a_start_that_times_out_every_time_says_so_and_leaves_nothing_running(slow_raylet):
    fault = slow_raylet(misses=5)
    with pytest.raises(RayStartError, match=r"did not register with its GCS within Ray's 30 s, 3 times"):
        start_embedded_ray(num_cpus=1)
    assert fault.calls == 3 and not ray.is_initialized()
    assert not any(psutil.pid_exists(pid) for pid in fault.leftovers)


def test_any_other_start_error_is_raised_at_once(slow_raylet):
    fault = slow_raylet(misses=5, error="port 6379 is in use")
    with pytest.raises(Exception, match="port 6379 is in use"):
        start_embedded_ray(num_cpus=1)
    assert fault.calls == 1 and psutil.pid_exists(fault.leftovers[0])  # nothing retried or stopped


def test_an_embedded_run_ignores_a_stale_cluster_file_and_shuts_the_ray_it_started_down(
    tmp_path, monkeypatch
):
    """Regressions: `ray.init()` joined whatever `ray_current_cluster` named (here a dead
    cluster: "num_cpus must not be provided"), and run_job left the Ray it started running (here
    a GPU job refused on this GPU-less machine, after Ray started)."""
    import tempfile
    from pathlib import Path

    from slimray.runtime.gpu import GpuUnavailableError
    from slimray.runtime.trainer import run_job

    ray_tmp = Path(tempfile.mkdtemp(prefix="srt", dir="/tmp"))  # short: Ray's socket paths
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    gpu_job = SPEC.model_dump(mode="json")
    gpu_job.update(output={"dir": str(tmp_path / "run")}, scaling={"num_workers": 1, "use_gpu": True})
    with pytest.raises(GpuUnavailableError, match="scaling.use_gpu: true, but this Ray cluster has no GPU"):
        run_job(parse_spec(gpu_job))
    assert not ray.is_initialized()  # the Ray run_job started is down again
    assert list(ray_tmp.glob("ray/session_*")), "the embedded Ray did not start under RAY_TMPDIR"


NO_PSUTIL_BEFORE_RAY = """
import importlib.abc, sys
class Image(importlib.abc.MetaPathFinder):  # the image's psutil is Ray's own, on its path once Ray loads
    def find_spec(self, name, path, target=None):
        if name == "psutil" and "ray" not in sys.modules:
            raise ImportError("no psutil before Ray loads (the image)")
sys.meta_path.insert(0, Image())
import slimray.cli.run, slimray.runtime.embedded_ray, slimray.runtime.worker_config
"""


def test_the_cli_loads_where_psutil_comes_only_with_ray_as_in_the_image():
    """Regression: the image has only Ray's own psutil (on `sys.path` once Ray loads); importing
    psutil before Ray stopped every `slimray run` there."""
    proc = subprocess.run([sys.executable, "-c", NO_PSUTIL_BEFORE_RAY], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]

"""The fault benchmark's pieces, fast: the table from run records, the run-directory readers on
real files, the spec it trains, and the process finder against a real Ray actor (found by PID
under the Ray its driver started, then SIGKILLed from outside). The cluster itself and the
faults run in tests/e2e/test_faults.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from faults.kinds import FAULTS, fault  # noqa: E402
from faults.procs import actor_processes, is_gone, send  # noqa: E402
from faults.rundir import newest_checkpoint, read_report, registered_checkpoints, truncate_largest_file  # noqa: E402
from faults.spec import example, job_spec  # noqa: E402
from faults.table import RunRecord, runs_table, summarize, summary_table, verdict  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _run(fault_name, repeat, wall, recovered=True, params=100, accuracy=0.97, causes=()):
    return RunRecord(fault_name, repeat, "succeeded" if recovered else "failed", wall, recovered,
                     injection={"what": "x", "at_seconds": 12.5, "after_step": 45}, params=params,
                     accuracy=accuracy, restart_causes=list(causes))  # fmt: skip


def test_the_table_counts_recoveries_and_time_lost_against_the_same_repeats_baseline():
    baselines = {0: _run("baseline", 0, 80), 1: _run("baseline", 1, 100)}
    runs = [_run("kill_worker", 0, 95, causes=["worker 1 died"]), _run("kill_worker", 1, 130, params=90),
            _run("kill_worker", 2, 50, recovered=False)]  # fmt: skip
    s = summarize(FAULTS["a"], runs, baselines)
    assert (s.recovered, s.total, s.verdict) == (2, 3, "missed")
    assert s.time_lost == {"median": 22.5, "min": 15, "max": 30, "n": 2}  # 95-80, 130-100
    assert s.same_params == 1 and s.causes == {"worker 1 died": 1}
    table = summary_table([s], list(baselines.values()))
    assert "| **kill_worker**" in table and "2/3" in table and "+22.5 [+15.0, +30.0]" in table
    assert "worker 1 died x1" in table and "≥ 10/10 recovered" in table
    rows = runs_table([*baselines.values(), *runs])
    assert rows.count("\n") == 2 + 5 and "12.5 (45)" in rows


def test_the_verdict_needs_every_run_recovered_and_ten_runs_for_met():
    assert verdict(10, 10) == "met" and verdict(9, 10) == "missed" and verdict(0, 0) == "missed"
    assert verdict(1, 1) == "on track (1/10 runs so far)"


def test_faults_are_named_by_letter_or_name_and_an_unknown_one_is_refused():
    assert fault("a") is fault("kill_worker") and [f.key for f in FAULTS.values()] == list("abcdef")
    with pytest.raises(ValueError, match="--faults: unknown fault 'z'.*a \\(kill_worker\\)"):
        fault("z")


def test_the_run_directory_is_read_from_outside(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name, step in (("c1", 45), ("c2", 90), ("c3", None)):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "model.keras").write_bytes(b"x" * 1000)
        if step:  # c3 is still being written: no state.json
            (checkpoints / name / "state.json").write_text("{}")
    snapshot = {"checkpoint_results": [{"checkpoint_dir_name": n, "metrics": {"step": s}}
                                       for n, s in (("c1", 45), ("c2", 90), ("c3", 135))]}  # fmt: skip
    (checkpoints / "checkpoint_manager_snapshot.json").write_text(json.dumps(snapshot))
    assert [c.step for c in registered_checkpoints(tmp_path)] == [45, 90]
    newest = newest_checkpoint(tmp_path)
    assert newest.path.name == "c2" and truncate_largest_file(newest).stat().st_size == 500
    (tmp_path / "report.json").write_text(json.dumps({
        "state": "succeeded", "exported_params": 105866, "exported_accuracy": 0.97, "workers": 2,
        "restarts_from_steps": [90], "restarts": [{"from_step": 90, "cause": "worker 1 lost"}],
        "prune_events": [{"step": 45}, {"step": 90}]}))  # fmt: skip
    report = read_report(tmp_path)
    assert (report.params, report.restarts_from_steps) == (105866, [90])
    assert report.restart_causes == ["worker 1 lost"] and report.prune_steps == [45, 90]
    assert read_report(tmp_path / "missing").state is None


def test_the_job_is_the_shipped_example_or_its_four_times_long_variant(tmp_path):
    spec = job_spec(tmp_path / "run", long=False, timeout_seconds=15, elastic=False)
    assert spec["output"] == {"dir": str(tmp_path / "run"), "shared": True}
    assert spec["train"] == example()["train"] and spec["prune"] == example()["prune"]
    long = example(long=True)
    assert long["train"]["epochs"] == 4 * example()["train"]["epochs"]
    assert long["prune"]["schedule"]["every"] == 4 * example()["prune"]["schedule"]["every"]


_ACTOR = """
import os, sys, time, ray
ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
@ray.remote(num_cpus=1)
class RayTrainWorker:
    def pid(self):
        return os.getpid()
worker = RayTrainWorker.remote()
print(ray.get(worker.pid.remote()), flush=True)
time.sleep(300)
"""


def test_the_process_finder_finds_a_real_ray_actor_by_pid_and_a_sigkill_ends_it():
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    driver = subprocess.Popen([sys.executable, "-c", _ACTOR], env=env, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(driver.stdout.readline())
        roots = [psutil.Process(driver.pid)]  # its Ray: the raylet, and under it the actor's process
        found = actor_processes(roots)
        assert [p.pid for p in found] == [pid]  # by its title
        assert actor_processes(roots, "TrainController") == []
        assert send(found[0], signal.SIGKILL)
        deadline = time.time() + 20
        while not is_gone(found[0]) and time.time() < deadline:
            time.sleep(0.2)
        assert is_gone(found[0]) and not send(found[0], signal.SIGCONT)
    finally:
        everything = psutil.Process(driver.pid).children(recursive=True)
        driver.kill()
        driver.wait(30)
        for proc in everything:  # Ray's processes, by PID (they outlive a SIGKILLed driver)
            with contextlib.suppress(psutil.Error):
                proc.kill()

"""One fast case of each fault of the fault benchmark (`benchmarks/bench_faults.py`) but (a),
injected from outside the job exactly as the benchmark does it: a tiny job run by the `slimray`
CLI (or the service) on a two-worker-node Ray cluster on loopback, a worker SIGSTOPped by PID,
the newest checkpoint truncated (then a worker SIGKILLed), a node removed for good, the driver
killed. (a), a worker SIGKILLed after a checkpoint, resumes from it: (c) kills the same way, and
tests/runtime/test_prune_rules.py resumes a killed worker from the newest checkpoint."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from faults.cluster import LocalCluster
from faults.jobs import CliJob, JobEnd, ServiceJob
from faults.kinds import FAULTS, Injection, Plan, Target
from faults.rundir import ReportSummary, read_report
from faults.spec import merged

pytestmark = pytest.mark.timeout(600)
COLLECTIVE_TIMEOUT = 5.0
WALL_LIMIT = 240.0


def tiny_spec(run_dir: Path, **overrides) -> dict:
    """A job of seconds: a small seed CNN, 40 steps, a checkpoint every 5, one prune event."""
    spec = {
        "name": "faults",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
        "data": {"source": "mnist"},
        "train": {"steps": 40, "batch_size": 32, "report_every": 5, "checkpoint_every": 5, "seed": 3},
        "prune": {"criterion": "l1", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 10}},
        "scaling": {"num_workers": 2, "start_timeout_seconds": 60},
        "failure": {"max_failures": 2},
        "output": {"dir": str(run_dir), "shared": True},
    }  # fmt: skip
    return merged(spec, overrides)


@dataclass
class Outcome:
    end: JobEnd
    injection: Injection
    report: ReportSummary
    job: CliJob | ServiceJob


def inject(cluster: LocalCluster, spec: dict, workdir: Path, key: str, hold: float = 0.0) -> Outcome:
    """Run `spec` and inject fault `key` from a thread, as the benchmark does (a short window)."""
    kind = FAULTS[key]
    job = (ServiceJob if kind.via_service else CliJob)(cluster, spec, workdir)
    try:
        plan = Plan(window=0.5, hold=hold, first_checkpoint_timeout=180)
        end, injection = kind.run(Target(cluster, job, random.Random(0), plan), WALL_LIMIT)
    finally:
        job.stop()
    return Outcome(end, injection, read_report(job.run_dir), job)


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalCluster(worker_cpus=(1, 1)).start()
    try:
        yield nodes
    finally:
        nodes.stop()


def _resumed_as_if_never_interrupted(out: Outcome) -> None:
    """Succeeded after a restart the report shows, pruned once (not again after the restart), and
    learned (40 steps reach ~0.5 on the digits; chance is 0.1)."""
    assert out.injection.injected, (out.injection.detail, out.end.detail)
    assert out.end.state == "succeeded", out.end.detail
    assert out.report.restarts_from_steps, "the restart is not in the report"
    assert out.report.prune_steps == [10] and out.report.params is not None
    assert out.report.accuracy is not None and out.report.accuracy > 0.3


def _restarts(out: Outcome) -> list[dict]:
    """The report's restart records (reason, cause, step, from_checkpoint)."""
    return json.loads((out.job.run_dir / "report.json").read_text())["restarts"]


def test_b_a_worker_stopped_past_the_collective_timeout_is_detected_and_the_group_restarts(cluster, tmp_path):
    spec = tiny_spec(tmp_path / "run", failure={"collective_timeout_seconds": COLLECTIVE_TIMEOUT})
    out = inject(cluster, spec, tmp_path, "b", hold=COLLECTIVE_TIMEOUT + 60)
    assert out.injection.injected, (out.injection.detail, out.end.detail)
    assert out.injection.detail["ended_by_system"], "the stopped worker was never ended: the hang went unseen"
    _resumed_as_if_never_interrupted(out)
    hung = [r for r in _restarts(out) if r["reason"] == "worker_hung"]  # named, from its checkpoint
    assert hung and "did not answer" in hung[0]["cause"] and "rank" in hung[0]["cause"], _restarts(out)
    assert hung[0]["from_checkpoint"] is True and hung[0]["step"] >= out.injection.after_step


def test_c_a_truncated_newest_checkpoint_falls_back_to_the_one_before(cluster, tmp_path):
    # the job once ended (loaded CI) before the injector's moment came: at 40 steps, and at 80 with a
    # checkpoint every 5 (a freeze never met a moment with none in flight); 100, one every 10
    train = {"steps": 100, "checkpoint_every": 10}
    out = inject(cluster, tiny_spec(tmp_path / "run", train=train), tmp_path, "c")
    _resumed_as_if_never_interrupted(out)
    assert min(out.report.restarts_from_steps) < out.injection.after_step  # not the truncated one


def test_d_a_worker_node_lost_for_good_finishes_on_the_remaining_worker(cluster, tmp_path):
    spec = tiny_spec(tmp_path / "run", scaling={"num_workers": {"min": 1, "max": 2}})
    try:
        out = inject(cluster, spec, tmp_path, "d")
    finally:
        for name in set(cluster.worker_names()) - set(cluster.nodes):  # the module's next tests
            cluster.add_worker(name, 1)
        cluster.wait_for_nodes(3, 120)
    _resumed_as_if_never_interrupted(out)


def test_e_a_killed_driver_is_resubmitted_by_the_service_and_resumes(cluster, tmp_path):
    out = inject(cluster, tiny_spec(tmp_path / "run"), tmp_path, "e")
    _resumed_as_if_never_interrupted(out)
    assert out.job.transitions()[-1] == "succeeded"


def test_f_a_worker_killed_while_the_group_starts_is_retried(cluster, tmp_path):
    out = inject(cluster, tiny_spec(tmp_path / "run"), tmp_path, "f")
    assert out.injection.injected and out.injection.after_step is None, out.injection.detail
    assert out.end.state == "succeeded", out.end.detail
    lost = [r for r in _restarts(out) if r["reason"] == "startup_failed"]  # from scratch, recorded
    assert lost and "while the group started" in lost[0]["cause"], _restarts(out)
    assert lost[0]["step"] == 0 and lost[0]["from_checkpoint"] is False

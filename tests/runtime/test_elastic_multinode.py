"""Elastic training on a real Ray cluster (issue 23, point 4): a head and two 1-CPU worker nodes
on this machine, a job with `scaling.num_workers: {min: 1, max: 2}`. It starts on both nodes;
one node is lost for good mid-run; the job resumes from its last checkpoint on the one worker
that still fits and finishes, the report showing the resize and the worker count over time."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from slimray.core.records import RunReport
from slimray.core.spec import parse_spec
from tests.ray_cluster_helpers import Cluster
from tests.runtime.test_multinode import RAY_TOKEN, REPO, Driver, _wait_for_nodes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def two_nodes():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    nodes = Cluster(env)
    try:
        nodes.start_head()
        nodes.start_worker("node_a", 1)
        nodes.start_worker("node_b", 1)
        _wait_for_nodes(nodes, 3)
        yield nodes
    finally:
        nodes.stop()


def _spec(out: Path):
    return parse_spec({
        "name": "elastic",
        "model": {"source": "mlp", "kwargs": {"hidden1": 16, "hidden2": 8}},
        "data": {"source": "digits"},
        "train": {"steps": 60, "batch_size": 16, "report_every": 5, "checkpoint_every": 10, "seed": 1},
        # Ray sees the lost node dead some seconds after its worker: the first new group, sized on
        # it, times out unplaced (30 s) and is sized again (a failure: max_failures 3)
        "scaling": {"num_workers": {"min": 1, "max": 2}, "start_timeout_seconds": 30},
        "failure": {"max_failures": 3},
        "output": {"dir": str(out), "shared": True},  # every node of this machine sees it
    })  # fmt: skip


def test_a_lost_node_shrinks_the_group_which_finishes_from_its_checkpoint(two_nodes, tmp_path):
    out = tmp_path / "run"
    driver = Driver(two_nodes, _spec(out), loop="tests.runtime.faulty_loops:PacedLoop")
    driver.wait_for_event(lambda e: e["kind"] == "report" and e["step"] >= 20, timeout=300)
    deadline = time.time() + 60
    while not list((out / "checkpoints").glob("checkpoint_*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the controller registers a checkpoint when it polls its workers
    two_nodes.kill_raylet("node_b")  # for good: no node comes back
    outcome = driver.outcome(timeout=400)
    assert outcome["state"] == "succeeded", outcome["error"]
    report = RunReport.model_validate(json.loads((out / "report.json").read_text()))
    sizes = [(g.workers, g.per_worker_batch, g.global_batch) for g in report.worker_groups]
    assert sizes[0] == (2, 8, 16) and sizes[-1] == (1, 16, 16), sizes  # the global batch kept
    resized = [r for r in report.restarts if "2 \u2192 1 workers" in r.cause]
    assert len(resized) == 1 and resized[0].from_checkpoint and resized[0].step >= 10, report.restarts
    workers = [e.workers for e in report.timeline]
    assert workers[0] == 2 and workers[-1] == 1 and report.timeline[-1].step == 60, workers

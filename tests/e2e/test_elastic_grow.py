"""Elastic growth from outside (issue 23 point 4): a job with `num_workers: {min: 1, max: 2}`
starts on the one worker node a loopback Ray cluster has; a second node joins mid-run, and the
group grows to two workers from its last checkpoint, the global batch kept, and the job ends as
it would have."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from faults.cluster import LocalCluster
from faults.jobs import CliJob
from faults.rundir import registered_checkpoints

from tests.e2e.test_faults import tiny_spec

pytestmark = pytest.mark.timeout(600)
STEPS = 3000  # here the group grew at step 600 of 1500 (after 35 s): room for a machine 3.5x faster
WALL_LIMIT = 480.0


def test_a_node_joining_mid_run_grows_the_group_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    spec = tiny_spec(run_dir, train={"steps": STEPS, "checkpoint_every": 25, "report_every": 25},
                     scaling={"num_workers": {"min": 1, "max": 2}, "resize_interval_seconds": 2})  # fmt: skip
    cluster = LocalCluster(worker_cpus=(1,)).start()
    job = None
    try:
        job = CliJob(cluster, spec, tmp_path)
        deadline = time.monotonic() + 180
        while job.running() and not registered_checkpoints(run_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job.running() and registered_checkpoints(run_dir), "no checkpoint while the job ran"
        assert len(cluster.training_workers()) == 1
        cluster.add_worker("node_1", 1)
        end = job.wait(WALL_LIMIT)
    finally:
        if job is not None:
            job.stop()
        cluster.stop()
    assert end.state == "succeeded", end.detail
    report = json.loads((run_dir / "report.json").read_text())
    groups = [(g["workers"], g["global_batch"]) for g in report["worker_groups"]]
    assert groups[0] == (1, 32) and groups[-1] == (2, 32), f"never grew: {report['worker_groups']}"
    grown = report["worker_groups"][-1]
    assert grown["per_worker_batch"] == 16 and grown["step"] > 0  # from a checkpoint, not step 0
    resized = [r for r in report["restarts"] if r["reason"] == "resized"]
    assert resized and resized[-1]["cause"] == "1 → 2 workers" and resized[-1]["from_checkpoint"]
    assert report["prune_events"][0]["step"] == 10 and report["exported_params"] is not None

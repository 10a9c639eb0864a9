"""A job with no service in the loop still reaches Prometheus: the driver's `ray.util.metrics`,
scraped from Ray's metrics port by a real Prometheus with the PodMonitor's relabelling, answer
every per-job query of the dashboard under the service's names (the job prunes to a FLOPs target,
so the target's panel is answered too)."""

from __future__ import annotations

import pytest

from slimray.core.spec import parse_spec
from tests.prom_helpers import (
    SERVICE_ONLY,
    podmonitor_relabel_configs,
    prometheus,
    target_job_exprs,
    wait_for_data,
)
from tests.service_helpers import free_port

pytestmark = pytest.mark.timeout(900)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _spec(out):
    return parse_spec({
        "name": "raymetrics",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
        "data": {"source": "mnist"},
        "train": {"steps": 40, "batch_size": 32, "report_every": 5, "checkpoint_every": 40},
        "prune": {"criterion": "l1", "target": {"flops": 0.5}, "schedule": {"kind": "one_shot", "step": 15}},
        "scaling": {"num_workers": 2},
        "output": {"dir": str(out)},
    })  # fmt: skip


def test_a_slimray_run_exports_the_dashboards_metrics_through_ray(tmp_path):
    import ray

    from slimray.runtime.trainer import run_job

    port = free_port()
    from slimray.runtime.embedded_ray import start_embedded_ray

    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    start_embedded_ray(num_cpus=4, include_dashboard=False, log_to_driver=False,
                       _metrics_export_port=port, runtime_env=env)  # fmt: skip
    try:
        result = run_job(_spec(tmp_path / "run"))
        assert result.state == "succeeded", result.error
        relabel = podmonitor_relabel_configs(ROOT / "k8s" / "podmonitor.yaml")
        scrape = {"job_name": "ray-pods", "honor_labels": False, "metric_relabel_configs": relabel,
                  "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}  # fmt: skip
        with prometheus(tmp_path, [scrape]) as url:
            exprs = [e for e in target_job_exprs("raymetrics") if not any(m in e for m in SERVICE_ONLY)]
            counts = wait_for_data(url, exprs, timeout=60)
            assert all(counts.values()), counts
    finally:
        ray.shutdown()


def _rule_event(step, groups, threshold=None, keep=None, kept=None):
    from slimray.core.records import CostGoal, PruneEvent

    goal = CostGoal(metric="flops", keep=keep, kept=kept) if keep is not None else None
    return PruneEvent(step=step, digest="d", local_scores_sha="s", target_sparsity=None, sparsity=0.5,
                      groups_pruned=1, channels_before=10, channels_after=5, params_before=100,
                      params_after=50, flops_before=1000, flops_after=500, group_sparsity=groups,
                      threshold=threshold, cost_target=goal)  # fmt: skip


def test_a_rolled_back_event_puts_the_rule_gauges_back_to_the_event_before_it():
    """Regression: after a rollback the gauges kept the undone event's sparsity and target."""
    from slimray.runtime.metrics import restored

    before = _rule_event(10, {"conv1": 0.25}, keep=0.75, kept=0.76)
    undone = _rule_event(20, {"conv1": 0.9, "dense": 0.5}, keep=0.5, kept=0.4)
    back = restored(undone, before)
    assert back.group_sparsity == {"conv1": 0.25, "dense": 0.0}  # a group first cut by it: dense again
    assert (back.cost_target.keep, back.cost_target.kept) == (0.75, 0.76)
    first = restored(undone, None)  # the only event undone: the dense model's values
    assert first.group_sparsity == {"conv1": 0.0, "dense": 0.0}
    assert (first.cost_target.keep, first.cost_target.kept) == (1.0, 1.0)
    threshold = restored(_rule_event(20, {"conv1": 0.6}, threshold=0.3), _rule_event(10, {"conv1": 0.2}, 0.1))
    assert threshold.threshold == 0.1 and threshold.group_sparsity == {"conv1": 0.2}
    assert restored(_rule_event(20, {"conv1": 0.6}, threshold=0.3), None).threshold == 0.0

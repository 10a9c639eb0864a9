"""The rules beside a sparsity, in real 2-worker jobs. The importance threshold: every rank applies
the same mask at each of the schedule's steps, a worker killed after the first event is replaced
and the group goes on agreeing, and the sparsity reached (an outcome) is in the report, per group
and in total. A FLOPs target on an auto schedule: pruning starts once the mask settles, each event
keeps its step of the way to the target's share of the dense model's FLOPs, on every rank alike,
and the report says when it started and that the target was reached."""

from __future__ import annotations

import pytest

from slimray.core.spec import parse_spec
from tests.runtime.test_distributed import _spec as distributed_spec

pytestmark = pytest.mark.timeout(900)
TAU = 0.6


def _spec(out, **rule):
    """test_distributed's job (its model, data, schedule and failures) with another rule (by
    default the threshold)."""
    data = distributed_spec(out).model_dump(mode="json")
    prune = {"criterion": "taylor", "schedule": data["prune"]["schedule"], **(rule or {"threshold": TAU})}
    return parse_spec({**data, "name": "rules", "prune": prune})


def test_a_threshold_job_agrees_on_every_event_through_a_worker_kill(ray_local, tmp_path):
    import keras

    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import KilledWorkerLoop

    result = run_job(_spec(tmp_path / "run"), loop=KilledWorkerLoop)
    assert ray_local.is_file(), "the fault was not injected"
    assert result.state == "succeeded", result.error
    report = result.report
    assert report["restarts_from_steps"] == [31]  # the checkpoint after the first event
    events = report["prune_events"]
    assert [e["step"] for e in events] == [30, 60]  # the first restored, not repeated
    for event in events:
        assert (event["threshold"], event["target_sparsity"]) == (TAU, None)
        digests = event["digest_by_rank"]
        assert set(digests) == {"0", "1"} and digests["0"] == digests["1"] == event["digest"]
        assert event["channels_after"] < event["channels_before"]  # each event removed some
        assert set(event["group_sparsity"]) == {"conv1", "conv2", "fc"}
    assert 0 < report["final_sparsity"] < 1
    assert report["final_group_sparsity"] == events[-1]["group_sparsity"]
    model = keras.models.load_model(result.run_dir / "model.keras", compile=False)
    assert model.get_layer("conv2").filters == round(32 * (1 - events[-1]["group_sparsity"]["conv2"]))


AUTO = {"kind": "auto", "every": 10, "epsilon": 0.6, "window": 2, "events": 2, "spacing": 30}


def test_a_flops_target_on_an_auto_schedule_starts_when_the_mask_settles_and_is_reached(ray_local, tmp_path):
    import keras

    from slimray.pruning import build_graph, count_model
    from slimray.runtime.trainer import run_job

    data = _spec(tmp_path / "run", target={"flops": 0.5}, scope="global").model_dump(mode="json")
    result = run_job(parse_spec({**data, "prune": {**data["prune"], "schedule": AUTO}}))
    assert result.state == "succeeded", result.error
    report = result.report
    # a first event of 25% changes at most half the channels' choice: under 0.6, so the mask
    # settles at the second check after the first (steps 0, 10, 20), and pruning starts at 20
    checks = report["mask_checks"]
    assert [(c["step"], c["start"]) for c in checks] == [(0, None), (10, None), (20, "settled")]
    assert checks[0]["distance"] is None and all(0 <= c["distance"] < 0.6 for c in checks[1:])
    events = report["prune_events"]
    assert [(e["step"], e["cost_target"]["keep"]) for e in events] == [(20, 0.75), (50, 0.5)]
    dense = events[0]["flops_before"]
    for event in events:
        goal = event["cost_target"]
        assert goal["metric"] == "flops" and event["target_sparsity"] is None
        assert goal["keep"] - 0.05 <= goal["kept"] <= goal["keep"], goal  # within budget, close to it
        assert goal["kept"] == round(event["flops_after"] / dense, 6)
        digests = event["digest_by_rank"]
        assert set(digests) == {"0", "1"} and digests["0"] == digests["1"] == event["digest"]
    assert report["target"] == {"metric": "flops", "target": 0.5, "kept": events[-1]["cost_target"]["kept"],
                                "reached": True, "limited_by": None}  # fmt: skip
    model = keras.models.load_model(result.run_dir / "model.keras", compile=False)
    assert count_model(model, build_graph(model)).flops == events[-1]["flops_after"]


def test_an_event_over_the_accuracy_budget_is_rolled_back_on_every_rank(ray_local, tmp_path):
    """Issue 24: a one-shot 95% prune loses far more than one point; `recovery_steps` later every
    rank restores the model from before it, retries at half at once, and the job ends inside the budget."""
    from slimray.runtime.trainer import run_job

    budget = {"sparsity": 0.95, "max_accuracy_drop": 0.01, "recovery_steps": 15, "max_retries": 1,
              "schedule": {"kind": "one_shot", "step": 30}}  # fmt: skip
    result = run_job(_spec(tmp_path / "run", **budget))
    assert result.state == "succeeded", result.error
    report = result.report
    first = report["rollbacks"][0]
    assert (first["event_step"], first["step"], first["level"], first["retry_level"]) == (30, 45, 0.95, 0.475)
    assert first["accuracy"] < first["reference"] - 0.01
    events = report["prune_events"]
    assert [(e["step"], e["target_sparsity"]) for e in events] == [(30, 0.95), (45, 0.475)]  # retried at once
    for event in events:
        assert event["digest_by_rank"]["0"] == event["digest_by_rank"]["1"]
    assert report["replicas_identical"] is True  # every rank rolled back the same way
    assert report["final_val_accuracy"] >= first["reference"] - 0.01  # the final model is inside it
    kept_retry = len(report["rollbacks"]) == 1
    assert report["final_sparsity"] == (pytest.approx(0.475, abs=0.05) if kept_retry else 0.0)
    assert report["timeline"][-1]["rollbacks"] == len(report["rollbacks"])
    assert (result.run_dir / "report.png").is_file()

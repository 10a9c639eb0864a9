"""The importance-threshold rule in a real 2-worker job: every rank applies the same mask at each
of the schedule's steps, a worker killed after the first event is replaced and the group goes on
agreeing, and the sparsity reached (an outcome) is in the report, per group and in total."""

from __future__ import annotations

import pytest

from slimray.core.spec import parse_spec
from tests.runtime.test_distributed import _spec as distributed_spec

pytestmark = pytest.mark.timeout(900)
TAU = 0.6


def _spec(out):
    """test_distributed's job (its model, data, schedule and failures) with the threshold rule."""
    data = distributed_spec(out).model_dump(mode="json")
    schedule = data["prune"]["schedule"]
    return parse_spec({**data, "name": "threshold",
                       "prune": {"criterion": "taylor", "threshold": TAU, "schedule": schedule}})  # fmt: skip


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

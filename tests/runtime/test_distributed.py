"""Real 2-worker runs on an embedded Ray: workers agree on one mask, a divergent mask stops the
job. A killed worker replaced and training resumed with the shrunk architecture (not repeating
the event before the kill): tests/runtime/test_prune_rules.py, whose threshold job runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from slimray.core.spec import parse_spec
from slimray.zoo.datasets import load_builtin

pytestmark = pytest.mark.timeout(900)


def _spec(out, **failure):
    return parse_spec({
        "name": "agree",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 16, "conv2": 32, "fc": 64}},
        "data": {"source": "mnist"},
        "train": {"steps": 90, "batch_size": 32, "learning_rate": 0.002, "seed": 7,
                  "report_every": 10, "checkpoint_every": 50},
        "prune": {"criterion": "taylor", "sparsity": 0.5, "scope": "local",
                  "schedule": {"kind": "iterative", "start": 30, "end": 60, "every": 30}},
        "scaling": {"num_workers": 2},
        "failure": {"max_failures": 2, **failure},
        "output": {"dir": str(out)},
    })  # fmt: skip


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    from slimray.runtime.trainer import run_job

    events: list[tuple[str, dict]] = []
    result = run_job(_spec(tmp_path_factory.mktemp("runs") / "reference"),
                     on_event=lambda kind, data: events.append((kind, data)))  # fmt: skip
    result.events = events  # what the CLI and the service were told, in order
    return result


def test_workers_score_different_shards_and_apply_one_mask(reference):
    assert reference.state == "succeeded", reference.error
    events = reference.report["prune_events"]
    assert [e["step"] for e in events] == [30, 60]
    for event in events:
        shas = event["local_scores_sha_by_rank"]
        assert set(shas) == {"0", "1"} and shas["0"] != shas["1"]  # local scores differ
        digests = event["digest_by_rank"]
        assert set(digests) == {"0", "1"} and digests["0"] == digests["1"] == event["digest"]
        assert event["channels_after"] < event["channels_before"]
        assert event["allreduce_bytes"] > 0


def test_report_holds_memory_durations_and_the_run_directory(reference):
    run_dir = reference.run_dir
    report = json.loads((run_dir / "report.json").read_text())
    assert report["state"] == "succeeded"
    memory = report["peak_memory_bytes_per_worker"]
    assert set(memory) == {"0", "1"} and all(v > 100 * 2**20 for v in memory.values())
    for event in report["prune_events"]:
        assert set(event["durations"]) >= {"score", "allreduce", "agreement", "surgery", "retrace"}
        assert all(v > 0 for v in event["durations"].values())
    assert report["params"]["after"] < report["params"]["before"]
    assert report["flops_per_sample"]["after"] < report["flops_per_sample"]["before"]
    assert report["dense_samples_per_second"] > 0 and report["throughput_gain"] is not None
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert (run_dir / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert any((run_dir / "checkpoints").glob("checkpoint_*"))


def test_progress_streams_every_window_and_the_wall_time_adds_up(reference):
    from slimray.runtime.breakdown import PHASES

    report = reference.report
    # report_every 10 over 90 steps, plus the two windows that prune events close early:
    # every one arrives though only checkpoints go through ray.train.report
    assert [e["step"] for e in report["timeline"]][:3] == [10, 20, 30]
    assert len(report["timeline"]) >= 10
    elapsed = [e["elapsed_seconds"] for e in report["timeline"]]
    assert elapsed == sorted(elapsed) and 0 < elapsed[0] < report["wall_seconds"]
    wall = report["wall_time"]
    assert set(wall) == {*PHASES, "total"}
    assert sum(v for k, v in wall.items() if k != "total") == pytest.approx(wall["total"], abs=0.01)
    assert wall["training"] > 0 and wall["startup"] > 0 and wall["export"] > 0
    assert wall["other"] < 0.25 * wall["total"]  # the phases account for most of the job
    grads = report["gradient_allreduce_bytes_per_step"]
    assert grads["after"] < grads["before"]  # pruning shrinks what each step allreduces


def test_the_startup_splits_into_parts_that_add_up_to_its_phase(reference):
    """Issue 27: the start-up phase by part, each from timestamps taken where it happens, told
    live (the "startup" event: metrics, CLI) and kept in report.json."""
    from slimray.core.startup import STARTUP_PARTS

    startup, wall = reference.report["startup"], reference.report["wall_time"]
    assert set(startup) == {*STARTUP_PARTS, "total", "first_trace", "warm"}
    assert startup["warm"] is False  # an embedded Ray's worker processes start for the job
    assert sum(startup[part] for part in STARTUP_PARTS) == pytest.approx(startup["total"], abs=0.01)
    assert startup["total"] == pytest.approx(wall["startup"], abs=0.05)
    assert all(startup[part] >= 0 for part in STARTUP_PARTS)
    assert startup["framework_import"] > 0.5  # a fresh worker process imports TensorFlow
    assert startup["controller"] + startup["worker_processes"] > 0 and startup["model_setup"] > 0
    assert 0 < startup["first_trace"] <= wall["tracing"]
    live = [data for kind, data in reference.events if kind == "startup"]
    assert live == [{**startup, "first_trace": None}]
    assert [kind for kind, _ in reference.events].index("startup") < [
        kind for kind, _ in reference.events
    ].index("end")


def test_exported_model_loads_with_plain_keras_and_scores_the_reported_accuracy(reference):
    report = reference.report
    code = (
        "import sys, json, numpy as np, keras\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "d = np.load(sys.argv[2])\n"
        "print(float((m.predict(d['x'], verbose=0).argmax(-1) == d['y']).mean()))\n"
        "assert 'slimray' not in sys.modules\n"
    )
    val = load_builtin("mnist", validation_split=0.2, seed=7)
    npz = reference.run_dir / "val.npz"
    np.savez(npz, x=val.x_val, y=val.y_val)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(reference.run_dir / "model.keras"), str(npz)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.split()[-1])
    assert accuracy == pytest.approx(report["exported_accuracy"], abs=1e-9)
    assert accuracy == pytest.approx(report["final_val_accuracy"], abs=0.002)
    assert accuracy > 0.8  # it learned: 90 steps of 64 digits


def test_a_perturbed_mask_fails_the_job_naming_group_and_step(ray_local, tmp_path):
    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import PerturbedMaskLoop

    result = run_job(_spec(tmp_path / "bad", max_failures=0), loop=PerturbedMaskLoop)
    assert result.state == "failed"
    assert "MaskDisagreementError" in result.error
    assert "group 'conv1'" in result.error and "at step 30" in result.error
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert report["state"] == "failed" and report["prune_events"] == []
    assert not (tmp_path / "bad" / "model.keras").exists()


def test_a_job_whose_workers_cannot_be_placed_fails_with_the_reason(ray_local, tmp_path):
    """Regression: 1024 workers on a small cluster sat RUNNING at step 0 with no error."""
    from slimray.runtime.trainer import run_job

    data = _spec(tmp_path / "big").model_dump(mode="json")
    data["scaling"] = {"num_workers": 6, "start_timeout_seconds": 5}  # the cluster has 4 CPUs
    result = run_job(parse_spec(data))
    assert result.state == "failed"
    assert "WorkerGroupStartupTimeoutError" in result.error or "timed out" in result.error.lower()


def test_a_job_that_cannot_run_leaves_the_old_run_directory_alone(ray_local, tmp_path):
    """Regression: `overwrite` deleted the old run before checking the job could run at all."""
    from slimray.runtime.trainer import run_job

    old = tmp_path / "run"
    old.mkdir()
    (old / "report.json").write_text("{}")
    data = _spec(old).model_dump(mode="json")
    data["train"]["batch_size"] = 100_000  # more than the digits
    with pytest.raises(ValueError, match="batch_size"):
        run_job(parse_spec(data), overwrite=True)
    assert (old / "report.json").read_text() == "{}"


def _partial_spec(out, strict: bool):
    return parse_spec({
        "name": "partial",
        "model": {"source": "tests.runtime.custom_models:partly_supported"},
        "data": {"source": "mnist"},
        "train": {"steps": 20, "batch_size": 32, "report_every": 10, "checkpoint_every": 100},
        "prune": {"criterion": "l1", "sparsity": 0.5, "strict": strict,
                  "schedule": {"kind": "one_shot", "step": 10}},
        "scaling": {"num_workers": 2},
        "output": {"dir": str(out)},
    })  # fmt: skip


def test_a_job_prunes_around_a_layer_it_cannot_and_reports_it(ray_local, tmp_path):
    from slimray.runtime.trainer import run_job

    result = run_job(_partial_spec(tmp_path / "partial", strict=False))
    assert result.state == "succeeded", result.error
    [event] = result.report["prune_events"]
    [blocker] = event["frozen"]
    assert (blocker["path"], blocker["operation"]) == ("unit_norm", "keras.layers.UnitNormalization")
    assert 0 < blocker["flops_share"] < 1
    assert event["params_after"] < event["params_before"]  # `second` was pruned
    import keras

    model = keras.models.load_model(result.run_dir / "model.keras", compile=False)
    assert model.get_layer("hidden").units == 32 and model.get_layer("second").units == 16


def test_a_strict_job_fails_before_training_naming_every_blocker(ray_local, tmp_path):
    from slimray.runtime.trainer import run_job

    result = run_job(_partial_spec(tmp_path / "strict", strict=True))
    assert result.state == "failed"
    assert (
        "BlockedModelError" in result.error and "'unit_norm' (keras.layers.UnitNormalization)" in result.error
    )
    assert json.loads((tmp_path / "strict" / "report.json").read_text())["prune_events"] == []

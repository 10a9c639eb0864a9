"""The Horovod backend in real 2-worker Ray Train runs: gradients averaged (a scaled rank changes
the run but not the agreement of the ranks), one mask across 3 prune events, a perturbed rank
caught by the agreement check, a killed worker resumed with a new rendezvous; and a job refused
where Horovod is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from slimray.core.errors import BackendUnavailableError, backend_unavailable_message
from slimray.core.spec import parse_spec
from tests.conftest import need_horovod

pytestmark = pytest.mark.timeout(900)


def _spec(out, **failure):
    return parse_spec({
        "name": "hvd",
        "backend": "horovod",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 16, "conv2": 32, "fc": 64}},
        "data": {"source": "mnist"},
        "train": {"steps": 90, "batch_size": 32, "learning_rate": 0.002, "seed": 7,
                  "report_every": 10, "checkpoint_every": 50},
        "prune": {"criterion": "taylor", "sparsity": 0.6, "scope": "local",
                  "schedule": {"kind": "iterative", "start": 20, "end": 60, "every": 20}},
        "scaling": {"num_workers": 2},
        "failure": {"max_failures": 2, **failure},
        "output": {"dir": str(out)},
    })  # fmt: skip


# ------------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def hvd_ray(request):
    """The shared module Ray (tests/runtime/conftest.py), started only once Horovod is known to
    be installed."""
    need_horovod()
    return request.getfixturevalue("ray_local")


@pytest.fixture(scope="module")
def runs(hvd_ray, tmp_path_factory):
    """Two identical horovod runs and one whose rank 1 scales its gradients (one Ray for all)."""
    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import ScaledGradientsLoop

    root = tmp_path_factory.mktemp("hvd")
    return {
        "first": run_job(_spec(root / "first")),
        "again": run_job(_spec(root / "again")),
        "scaled": run_job(_spec(root / "scaled"), loop=ScaledGradientsLoop),
    }


def test_horovod_averages_gradients_so_ranks_stay_identical(runs):
    for name, result in runs.items():
        assert result.state == "succeeded", (name, result.error)
        report = result.report
        assert report["backend"] == "horovod"
        shas = report["weights_sha_by_rank"]
        assert set(shas) == {"0", "1"} and shas["0"] == shas["1"], name  # no silent divergence
        assert report["replicas_identical"] is True
    first, again, scaled = (runs[k].report["weights_sha_by_rank"]["0"] for k in ("first", "again", "scaled"))
    assert first == again  # the run is reproducible, so a difference below is the scaling's
    assert scaled != first  # rank 1's gradients reached rank 0: they were reduced, not ignored


def test_one_mask_across_three_prune_events_and_a_throughput_gain(runs):
    report = runs["first"].report
    events = report["prune_events"]
    assert [e["step"] for e in events] == [20, 40, 60]
    for event in events:
        shas = event["local_scores_sha_by_rank"]
        assert shas["0"] != shas["1"]  # each rank scored its own shard
        assert event["digest_by_rank"]["0"] == event["digest_by_rank"]["1"] == event["digest"]
        assert event["params_after"] < event["params_before"]
        assert event["allreduce_bytes"] > 0
    # the gradients Horovod fuses shrink with the model: it saw the new, smaller tensors
    grads = report["gradient_allreduce_bytes_per_step"]
    assert grads["after"] < grads["before"] / 2
    assert report["throughput_gain"] is not None and report["throughput_gain"] > 0
    assert report["final_val_accuracy"] > 0.7


def test_perturbed_scores_on_one_rank_fail_the_agreement_check(hvd_ray, tmp_path):
    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import DriftingScoresLoop

    result = run_job(_spec(tmp_path / "drift", max_failures=0), loop=DriftingScoresLoop)
    assert result.state == "failed"
    assert "MaskDisagreementError" in result.error
    assert "at step 20" in result.error and "group '" in result.error
    assert json.loads((tmp_path / "drift" / "report.json").read_text())["prune_events"] == []


def _architecture(path) -> list[tuple[str, tuple[int, ...]]]:
    import keras

    model = keras.models.load_model(path, compile=False)
    return [(w.path, tuple(w.shape)) for w in model.weights]


def test_a_killed_worker_resumes_with_a_new_rendezvous_and_the_same_architecture(hvd_ray, runs, tmp_path):
    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import KilledWorkerLoop

    result = run_job(_spec(tmp_path / "killed"), loop=KilledWorkerLoop)
    assert hvd_ray.is_file(), "the fault was not injected"
    assert result.state == "succeeded", result.error
    assert result.report["restarts_from_steps"] == [41]  # the checkpoint of the step-40 event
    assert [e["step"] for e in result.report["prune_events"]] == [20, 40, 60]
    assert result.report["replicas_identical"] is True
    reference = runs["first"].run_dir / "model.keras"
    assert _architecture(result.run_dir / "model.keras") == _architecture(reference)


# ------------------------------------------------------------------ missing Horovod


def test_slimray_run_refuses_horovod_where_it_is_missing_and_keeps_the_old_run(tmp_path):
    """A `horovod` package that fails to import shadows the real one in the driver and in the
    Ray it starts: the job stops before training, naming the field and `make horovod`."""
    shadow = tmp_path / "shadow" / "horovod"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no horovod on this cluster (test)')\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text('{"state": "succeeded"}')
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(_spec(out).model_dump(mode="json")))
    env = {**os.environ, "PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    slimray = os.path.join(os.path.dirname(sys.executable), "slimray")
    proc = subprocess.run([slimray, "run", str(spec), "--overwrite"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = proc.stdout + proc.stderr
    assert backend_unavailable_message("horovod", "") in message  # the one wording
    assert "no horovod on this cluster (test)" in message and "make horovod" in message
    assert "Traceback" not in message
    assert json.loads((out / "report.json").read_text()) == {"state": "succeeded"}


def test_a_worker_without_horovod_fails_with_the_one_error_and_message(monkeypatch):
    """The worker's own check (a cluster whose nodes differ): the driver's error, not a RuntimeError."""
    from slimray.runtime.backends import HorovodBackend

    monkeypatch.setitem(sys.modules, "horovod", None)  # `import horovod` raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"backend 'horovod' cannot run on this Ray cluster: "
                       r"horovod 0\.28\.1 with TensorFlow is not installed .*make horovod"):  # fmt: skip
        HorovodBackend(rank=0, world=2)

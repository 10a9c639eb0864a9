"""`slimray prune`: the real command, run as a user would, on a saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slimray.zoo.models import build_model

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _slimray(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slimray.cli", *args],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "resnet.keras"
    build_model("resnet", input_shape=(16, 16, 3), stage1=16, stage2=24, inner1=12, inner2=20).save(path)
    return path


def test_prune_writes_a_plain_keras_model_and_a_report(saved_model, tmp_path):
    out, report = tmp_path / "small.keras", tmp_path / "report.json"
    proc = _slimray("prune", str(saved_model), "--sparsity", "0.5", "--output", str(out),
                    "--criterion", "l2", "--scope", "global", "--round-to", "4",
                    "--report", str(report))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Channel groups pruned" in proc.stdout and "flops" in proc.stdout
    data = json.loads(report.read_text())
    assert data["params_after"] < data["params_before"]
    assert data["flops_after"] < data["flops_before"]
    by_id = {g["id"]: g for g in data["groups"]}
    assert set(by_id) == {"b1_conv2+stem", "b1_conv1", "b2_conv1", "b2_conv2+b2_proj"}
    for g in data["groups"]:
        assert len(g["kept"]) % 4 == 0 or len(g["kept"]) == g["size"]
        assert g["kept"] == sorted(g["kept"]) and g["layers"]
    assert data["layers_after"] and len(data["digest"]) == 64
    # loads with plain Keras, with no slimray import and no custom objects
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, keras; m = keras.models.load_model(sys.argv[1]); "
         "assert 'slimray' not in sys.modules; print(m.count_params())", str(out)],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert int(check.stdout.split()[-1]) == data["params_after"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--sparsity", "1.5"], "sparsity=1.5"), (["--criterion", "l7"], "l7"),
     (["--criterion", "taylor"], "needs data"), (["--round-to", "0"], "round_to=0"),
     (["--min-channels", "-3"], "min_channels=-3")],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_them(saved_model, tmp_path, args, message):
    out = tmp_path / "x.keras"
    base = ["prune", str(saved_model), "--output", str(out)]
    if "--sparsity" not in args:
        base += ["--sparsity", "0.5"]
    proc = _slimray(*base, *args)
    assert proc.returncode == 2
    assert message in proc.stdout.replace("\n", "")
    assert not out.exists()


def test_missing_model_file(tmp_path):
    proc = _slimray("prune", str(tmp_path / "nope.keras"), "--sparsity", "0.5",
                    "--output", str(tmp_path / "o.keras"))  # fmt: skip
    assert proc.returncode == 2 and "not found" in proc.stdout


# ------------------------------------------------------------------ slimray run


def _write_spec(path: Path, out: Path, **overrides) -> Path:
    import yaml

    spec = {
        "name": "cli-run",
        "model": {"source": "mlp", "kwargs": {"hidden1": 64, "hidden2": 32}},
        "data": {"source": "synthetic", "synthetic": {"samples": 1200, "shape": [16], "num_classes": 4}},
        "train": {"steps": 40, "batch_size": 32, "report_every": 5},
        "prune": {"criterion": "l2", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 15}},
        "scaling": {"num_workers": 2},
        "output": {"dir": str(out)},
        **overrides,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.timeout(600)
def test_run_trains_prunes_and_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = _slimray("run", str(_write_spec(tmp_path / "job.yaml", out)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = " ".join(proc.stdout.split())
    assert "prune @ step 15" in text and "cli-run: succeeded" in text
    assert "throughput gain" in text
    for name in ("model.keras", "report.json", "report.png", "saved_model", "checkpoints"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["state"] == "succeeded" and len(report["prune_events"]) == 1
    assert report["params"]["after"] < report["params"]["before"]
    # the directory now holds a run: running again without --overwrite refuses, losing nothing
    again = _slimray("run", str(tmp_path / "job.yaml"))
    assert again.returncode == 2 and "already holds a run" in " ".join(again.stdout.split())
    assert json.loads((out / "report.json").read_text()) == report


def test_run_rejects_an_invalid_spec_naming_every_field(tmp_path):
    spec = _write_spec(
        tmp_path / "bad.yaml",
        tmp_path / "never",
        train={"steps": 0, "batch_size": 32},
        scaling={"num_workers": 0},
    )
    proc = _slimray("run", str(spec))
    assert proc.returncode == 2
    text = " ".join(proc.stdout.split())
    assert "train.steps" in text and "scaling.num_workers" in text
    assert not (tmp_path / "never").exists()


def test_schema_command_prints_json_schema():
    proc = _slimray("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "JobSpec"

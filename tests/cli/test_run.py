"""`slimray run`: a job spec trained and pruned on embedded Ray, as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.helpers import slimray


def _write_spec(path: Path, out: Path, **overrides) -> Path:
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
    proc = slimray("run", str(_write_spec(tmp_path / "job.yaml", out)))
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
    again = slimray("run", str(tmp_path / "job.yaml"))
    assert again.returncode == 2 and "already holds a run" in " ".join(again.stdout.split())
    assert json.loads((out / "report.json").read_text()) == report


def test_run_rejects_an_invalid_spec_naming_every_field(tmp_path):
    spec = _write_spec(
        tmp_path / "bad.yaml",
        tmp_path / "never",
        train={"steps": 0, "batch_size": 32},
        scaling={"num_workers": 0},
    )
    proc = slimray("run", str(spec))
    assert proc.returncode == 2
    text = " ".join(proc.stdout.split())
    assert "train.steps" in text and "scaling.num_workers" in text
    assert not (tmp_path / "never").exists()

"""Faults a shared cluster brings, one fast case each on a tiny job: a driver lost mid-run
(resumed), a corrupt newest checkpoint. A frozen worker and one lost while the group starts are
injected from outside in tests/e2e/test_faults.py (b and f), which check their restart records."""

from __future__ import annotations

import shutil

import pytest

from slimray.core.spec import parse_spec

pytestmark = pytest.mark.timeout(600)


def _spec(out, workers=2, **failure):
    return parse_spec({
        "name": "faults",
        "model": {"source": "tests.runtime.custom_models:tiny"},
        "data": {"source": "synthetic", "synthetic": {"samples": 512, "shape": [16], "num_classes": 4}},
        "train": {"steps": 16, "batch_size": 16, "report_every": 4, "checkpoint_every": 5},
        "scaling": {"num_workers": workers},
        "failure": {"max_failures": 2, **failure},
        "output": {"dir": str(out)},
    })  # fmt: skip


@pytest.fixture(scope="module")
def crashed(ray_local, tmp_path_factory):
    """A one-worker run that died at step 12 with its checkpoints of steps 5 and 10 in place."""
    from slimray.runtime.trainer import run_job
    from tests.runtime.faulty_loops import CrashingLoop

    out = tmp_path_factory.mktemp("crashed") / "run"
    result = run_job(_spec(out, workers=1, max_failures=0), loop=CrashingLoop)
    assert result.state == "failed" and "injected crash" in result.error
    return out


def _checkpoints(run_dir):
    return sorted(p for p in (run_dir / "checkpoints").glob("checkpoint_*") if p.is_dir())


def test_a_resumed_driver_continues_from_the_newest_readable_checkpoint(crashed, tmp_path):
    """The newest checkpoint (step 10) is truncated: the new driver resumes from step 5."""
    from slimray.runtime.trainer import run_job

    run_dir = tmp_path / "run"
    shutil.copytree(crashed, run_dir)
    newest = _checkpoints(run_dir)[-1]
    model = newest / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a truncated upload
    result = run_job(_spec(run_dir, workers=1), overwrite=True, resume=True)
    assert result.state == "succeeded", result.error
    [restart] = result.report["restarts"]
    assert (restart["reason"], restart["cause"], restart["step"]) == ("driver_resumed", "driver resumed", 5)
    assert result.report["timeline"][0]["step"] > 5  # it did not train from step 0
    [warning] = result.report["warnings"]
    assert newest.name in warning and "model.keras" in warning and "manifest" in warning

"""What a resumed driver keeps of the run directory (the runs themselves: test_faults.py)."""

from __future__ import annotations

import pytest

from slimray.core.spec import parse_spec
from slimray.runtime.trainer import RunDirectoryExists, check_run_dir, prepare_run_dir


def _spec(out):
    return parse_spec({"model": {"source": "mlp"}, "data": {"source": "digits"},
                       "train": {"steps": 4}, "output": {"dir": str(out)}})  # fmt: skip


def test_a_resumed_run_keeps_its_checkpoints_and_a_new_one_starts_empty(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / "checkpoint_1").mkdir(parents=True)
    with pytest.raises(RunDirectoryExists):
        check_run_dir(_spec(out), overwrite=False)
    store = check_run_dir(_spec(out), overwrite=False, resume=True)
    assert prepare_run_dir(store, resume=True) == out and (out / "checkpoints" / "checkpoint_1").is_dir()
    prepare_run_dir(store)
    assert list(out.iterdir()) == []


def test_a_resumed_run_with_nothing_to_resume_from_gets_its_directory(tmp_path):
    out = tmp_path / "never" / "written"
    assert prepare_run_dir(check_run_dir(_spec(out), overwrite=True, resume=True), resume=True).is_dir()

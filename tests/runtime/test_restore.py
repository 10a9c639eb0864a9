"""A restarted worker's restore: the newest checkpoint that reads whole, and the accuracy budget's
pre-event model carried inside it (covered by its manifest), so a group restarted while an event
awaits its check can still undo it."""

from __future__ import annotations

import keras
import pytest
from ray.train import Checkpoint

from slimray.core.records import BudgetState
from slimray.runtime.checkpoints import CorruptCheckpointError, TrainState, read_checkpoint, write_checkpoint
from slimray.runtime.restore import PRE_EVENT_DIR, read_newest_readable
from slimray.zoo.models import build_model


def _model(width: int):
    model = build_model("mlp", input_shape=(4,), hidden1=width, hidden2=4)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _run_with_pending_check(root):
    """checkpoint_0001 (step 10), then checkpoint_0002 (step 25) taken while the event of step 20
    awaited its check: the dense model before it attached."""
    dense, optimizer = _model(8)
    pre_event = write_checkpoint(root / "pre", dense, optimizer, TrainState(step=20))
    write_checkpoint(root / "run" / "checkpoint_0001", dense, optimizer, TrainState(step=10))
    pruned, optimizer = _model(4)
    pending = TrainState(step=25, sparsity=0.5, budget=BudgetState(check_at=35, event_step=20, level=0.5))
    write_checkpoint(
        root / "run" / "checkpoint_0002", pruned, optimizer, pending, attach={PRE_EVENT_DIR: pre_event}
    )
    return root / "run"


def test_a_pending_checks_pre_event_model_is_restored_beside_the_checkpoint(tmp_path):
    run = _run_with_pending_check(tmp_path)
    warnings: list[str] = []
    model, _, state = read_newest_readable(
        Checkpoint(str(run / "checkpoint_0002")), warnings, tmp_path / "mine"
    )
    assert state.step == 25 and state.budget.check_at == 35 and not warnings
    assert model.layers[1].units == 4
    before, _, before_state = read_checkpoint(tmp_path / "mine")  # what a rollback would restore
    assert before.layers[1].units == 8 and before_state.step == 20


def test_a_damaged_pre_event_model_fails_the_checkpoint_and_the_one_before_is_read(tmp_path):
    run = _run_with_pending_check(tmp_path)
    victim = next((run / "checkpoint_0002" / PRE_EVENT_DIR).glob("model.keras"))
    victim.write_bytes(victim.read_bytes()[:100])  # the outer manifest covers the attached files
    with pytest.raises(CorruptCheckpointError, match=f"{PRE_EVENT_DIR}/model.keras"):
        read_checkpoint(run / "checkpoint_0002")
    warnings: list[str] = []
    _, _, state = read_newest_readable(Checkpoint(str(run / "checkpoint_0002")), warnings, tmp_path / "mine")
    assert state.step == 10 and "checkpoint_0002 skipped as unreadable" in warnings[0]
    assert not (tmp_path / "mine").exists()  # the older checkpoint had no pending check


def test_a_checkpoint_carrying_a_pre_event_model_reads_in_a_job_without_a_budget(tmp_path):
    run = _run_with_pending_check(tmp_path)
    _, _, state = read_newest_readable(Checkpoint(str(run / "checkpoint_0002")), [], None)
    assert state.step == 25

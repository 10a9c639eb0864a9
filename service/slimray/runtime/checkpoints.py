"""Checkpoints that hold the *current* (shrunk) architecture, its weights, the optimizer state
and the pruning scheduler state; written so a half-written one is never read."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimray.core.records import PruneEvent

MODEL_FILE = "model.keras"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"  # written last: its presence marks a complete checkpoint
SAVED_MODEL_DIR = "saved_model"  # the final checkpoint only: the exported SavedModel
EXPORT_FILE = "export.json"  # the final checkpoint only: the reloaded model's accuracy


@dataclass
class TrainState:
    """Everything beyond weights that a resumed worker needs to continue identically."""

    step: int = 0
    sparsity: float = 0.0
    baseline_sizes: dict[str, int] = field(default_factory=dict)
    events: list[PruneEvent] = field(default_factory=list)  # complete: retrace included
    optimizer: dict[str, Any] = field(default_factory=dict)  # {"class_name", "config"}

    def to_json(self) -> str:
        fields = {**asdict(self), "events": [e.model_dump(mode="json") for e in self.events]}
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        fields = json.loads(text)
        events = [PruneEvent.model_validate(e) for e in fields.pop("events", [])]
        return cls(**fields, events=events)


def _previous(directory: Path) -> Path:
    """Where the checkpoint being replaced waits until its successor is in place."""
    return directory.with_name(f".previous-{directory.name}")


def _swap_in(tmp: Path, directory: Path) -> None:
    """Put `tmp` at `directory` so that at every instant one complete checkpoint exists:
    old -> .previous, new -> directory, then drop .previous (a kill between leaves .previous)."""
    previous = _previous(directory)
    if directory.exists():
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(directory, previous)
    os.replace(tmp, directory)
    shutil.rmtree(previous, ignore_errors=True)


def complete_checkpoint(directory: Path) -> Path:
    """`directory` if it holds a complete checkpoint, else the one it was replacing."""
    directory = Path(directory)
    for candidate in (directory, _previous(directory)):
        if (candidate / STATE_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"incomplete checkpoint (no {STATE_FILE}): {directory}")


def write_checkpoint(directory: Path, model: Any, optimizer: Any, state: TrainState) -> Path:
    """Write into a sibling temp dir, then swap it in: readers never see partial files, and a
    kill at any point leaves the old or the new checkpoint (`complete_checkpoint`)."""
    # lazy: the driver imports this module for its file names and must not load TensorFlow
    import keras

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    try:
        model.save(tmp / MODEL_FILE)
        values = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
        np.savez(tmp / OPTIMIZER_FILE, **values)
        state.optimizer = keras.optimizers.serialize(optimizer)
        (tmp / STATE_FILE).write_text(state.to_json())
        _swap_in(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_checkpoint(directory: Path) -> tuple[Any, Any, TrainState]:
    """Model, built optimizer with its state restored, and the train state.

    Call inside the strategy scope so variables are created distributed.
    """
    # lazy: the driver imports this module for its file names and must not load TensorFlow
    import keras

    directory = complete_checkpoint(directory)
    state = TrainState.from_json((directory / STATE_FILE).read_text())
    model = keras.models.load_model(directory / MODEL_FILE, compile=False)
    optimizer = keras.optimizers.deserialize(state.optimizer)
    optimizer.build(model.trainable_variables)
    with np.load(directory / OPTIMIZER_FILE) as data:
        values = [data[k] for k in sorted(data.files)]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint {directory} holds {len(values)} optimizer variables; "
            f"the rebuilt optimizer has {len(optimizer.variables)}"
        )
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
    return model, optimizer, state

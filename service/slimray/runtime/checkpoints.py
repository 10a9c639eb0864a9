"""Checkpoints that hold the *current* (shrunk) architecture, its weights, the optimizer state
and the pruning scheduler state; written so a half-written one is never read, and read only after
their manifest (sizes and digests, written last) proves every file whole."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimray.core.records import AutoState, BudgetState, PruneEvent

MODEL_FILE = "model.keras"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"  # written last: {file: [bytes, sha256]}; its presence marks a complete one
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
    budget: BudgetState = field(default_factory=BudgetState)  # the accuracy budget's, if any
    auto: AutoState = field(default_factory=AutoState)  # an auto schedule's, if any

    def to_json(self) -> str:
        fields = {**asdict(self), "events": [e.model_dump(mode="json") for e in self.events],
                  "budget": self.budget.model_dump(mode="json"),
                  "auto": self.auto.model_dump(mode="json")}  # fmt: skip
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        fields = json.loads(text)
        events = [PruneEvent.model_validate(e) for e in fields.pop("events", [])]
        budget = BudgetState.model_validate(fields.pop("budget", {}))
        auto = AutoState.model_validate(fields.pop("auto", {}))
        return cls(**fields, events=events, budget=budget, auto=auto)


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


class CorruptCheckpointError(ValueError):
    """A checkpoint file differs from its manifest (a truncated upload, a full disk, bit rot)."""


class CheckpointDisagreementError(RuntimeError):
    """The ranks of one worker group restored different checkpoints."""


def agree_on_restored_step(rank: int, step: int, reducer: Any) -> None:
    """Every rank restored the same step: each reads the checkpoint itself and may skip one it
    cannot read, and a group split across checkpoints would train diverging models."""
    value = np.asarray([float(step)])
    low, high = int(reducer.allmin(value)[0]), int(reducer.allmax(value)[0])
    if low != high:
        raise CheckpointDisagreementError(
            f"rank {rank} restored step {step}, but the ranks restored steps {low} to {high} (a "
            "checkpoint one rank could not read: see the report's warnings)"
        )


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def write_manifest(directory: Path) -> None:
    """Every file's size and digest, written last (atomically): the checkpoint is complete."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p != directory / MANIFEST_FILE)
    manifest = {p.relative_to(directory).as_posix(): [p.stat().st_size, _digest(p)] for p in files}
    tmp = directory / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, directory / MANIFEST_FILE)


def verify_checkpoint(directory: Path) -> None:
    """FileNotFoundError if a listed file is gone, CorruptCheckpointError if one differs from the
    manifest (files added after it, such as the final checkpoint's export, are not checked)."""
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    for name, (size, digest) in manifest.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"incomplete checkpoint (no {name}): {directory}")
        if path.stat().st_size != size or _digest(path) != digest:
            raise CorruptCheckpointError(
                f"checkpoint {directory}: {name} is {path.stat().st_size} bytes and does not match its "
                f"manifest ({size} bytes, sha256 {digest[:12]}...)"
            )


def complete_checkpoint(directory: Path) -> Path:
    """`directory` if it holds a complete checkpoint, else the one it was replacing."""
    directory = Path(directory)
    for candidate in (directory, _previous(directory)):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"incomplete checkpoint (no {MANIFEST_FILE}): {directory}")


def write_checkpoint(directory: Path, model: Any, optimizer: Any, state: TrainState,
                     attach: dict[str, Path] | None = None) -> Path:  # fmt: skip
    """Write into a sibling temp dir, then swap it in: readers never see partial files, and a
    kill at any point leaves the old or the new checkpoint (`complete_checkpoint`). `attach`:
    directories copied in under their names, covered by the manifest."""
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
        for name, source in (attach or {}).items():
            shutil.copytree(source, tmp / name)
        write_manifest(tmp)
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
    verify_checkpoint(directory)
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

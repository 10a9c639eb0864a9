"""A restarted worker's restore: the newest of the run's checkpoints that reads whole (a truncated
upload is skipped with a warning), with the accuracy budget's pre-event model if it holds one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray.train import Checkpoint

from slimray.runtime.checkpoints import CorruptCheckpointError, TrainState, read_checkpoint

PRE_EVENT_DIR = "pre_event"  # in a checkpoint taken while an event awaits its accuracy check


def older_checkpoints(checkpoint: Checkpoint) -> list[Checkpoint]:
    """The run's checkpoints older than `checkpoint`, newest first (Ray Train names them by time)."""
    parent, name = checkpoint.path.rstrip("/").rsplit("/", 1)
    infos = checkpoint.filesystem.get_file_info(pafs.FileSelector(parent))
    dirs = [i.base_name for i in infos if i.type == pafs.FileType.Directory]
    names = sorted((n for n in dirs if n.startswith("checkpoint_") and n < name), reverse=True)
    return [Checkpoint(f"{parent}/{n}", filesystem=checkpoint.filesystem) for n in names]


def read_newest_readable(
    checkpoint: Checkpoint, warnings: list[str], pre_event: Path | None
) -> tuple[Any, Any, TrainState] | None:
    """Model, optimizer and state from `checkpoint`, else from the newest older one that reads
    whole (each skipped one appended to `warnings`); its pre-event model, if any, copied to
    `pre_event` (a job with an accuracy budget)."""
    for candidate in [checkpoint, *older_checkpoints(checkpoint)]:
        try:
            with candidate.as_directory() as directory:
                restored = read_checkpoint(Path(directory))
                if pre_event is not None and (Path(directory) / PRE_EVENT_DIR).is_dir():
                    shutil.rmtree(pre_event, ignore_errors=True)
                    shutil.copytree(Path(directory) / PRE_EVENT_DIR, pre_event)
            return restored
        except (CorruptCheckpointError, FileNotFoundError) as err:
            warnings.append(f"checkpoint {candidate.path} skipped as unreadable: {err}")
    return None

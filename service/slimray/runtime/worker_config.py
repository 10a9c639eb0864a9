"""What the driver hands each worker, and the workers' entry point: light (no TensorFlow), so the
driver and Ray Train's controller import it without loading the worker loop."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from slimray.core.envvars import TF_LOG_LEVEL
from slimray.core.startup import WorkerMarks
from slimray.core.storage import apply_umask
from slimray.runtime.progress import ProgressSender


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the driver hands each worker (Ray pickles it into `train_loop_config`)."""

    spec: dict[str, Any]  # JobSpec as JSON
    validation: Any  # ObjectRef of (x_val, y_val), or the tuple itself
    input_shape: tuple[int, ...]
    num_classes: int
    steps_per_epoch: int
    total_steps: int
    progress: ProgressSender | None = None
    train_arrays: Any = None  # ObjectRef of (x_train, y_train) when the data is in memory
    loop: type | None = None  # a WorkerLoop subclass (tests inject faults this way); None: WorkerLoop
    n_train: int = 0  # training samples: each group's epoch from its own size (0: steps_per_epoch)


def process_created() -> float:
    """When this process was created (`time.time()` scale), by the kernel's account."""
    import psutil  # a Ray dependency; only workers ask

    return psutil.Process().create_time()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point (runs in every worker process); its start-up is timestamped here."""
    entered = time.time()
    os.environ.setdefault(TF_LOG_LEVEL, "2")
    apply_umask()  # checkpoints: a worker on a `ray start` node has that shell's umask otherwise
    # lazy: the worker loop loads TensorFlow, which the driver importing this module must not
    from slimray.runtime.worker import WorkerLoop

    marks = WorkerMarks(process_created=process_created(), entered=entered, imported=time.time())
    config = config["worker"]
    (config.loop or WorkerLoop)(config, marks).start().run()

"""The per-worker loop: the job's backend's train step (TF collectives or Horovod), and at
scheduled steps score -> allreduce -> plan -> agree -> shrink, then keep training smaller."""

from __future__ import annotations

import hashlib
import os
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimray.core.spec import JobSpec
from slimray.runtime.breakdown import PhaseClock
from slimray.runtime.gpu import require_gpu
from slimray.runtime.modeling import (
    build_job_model,
    build_optimizer,
    evaluate,
    gradient_bytes,
)
from slimray.runtime.progress import FINISHED, STARTED, WINDOW, WorkerMessage
from slimray.runtime.shard_cache import ShardCache
from slimray.runtime.worker_config import WorkerConfig

# phases that a window's throughput leaves out: they are not training steps or data waits
_NOT_THROUGHPUT = ("tracing", "prune_events", "checkpoints", "evaluation", "progress")


def peak_memory_bytes() -> int:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def weights_digest(model: Any) -> str:
    """A short digest of every weight's bytes: equal on all ranks when gradients were averaged."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Window:
    """One worker's training progress since its last window message."""

    phases_at_start: dict[str, float]
    start: float = field(default_factory=time.perf_counter)
    samples: int = 0
    steps: int = 0
    compute: float = 0.0
    losses: list[Any] = field(default_factory=list)  # tensors: no host sync per step
    corrects: list[Any] = field(default_factory=list)

    def add(self, samples: int, seconds: float, loss: Any, correct: Any) -> None:
        self.samples += samples
        self.steps += 1
        self.compute += seconds
        self.losses.append(loss)
        self.corrects.append(correct)

    def metrics(self, phases_now: dict[str, float]) -> dict[str, float]:
        excluded = sum(phases_now.get(p, 0.0) - self.phases_at_start.get(p, 0.0) for p in _NOT_THROUGHPUT)
        wall = time.perf_counter() - self.start - excluded
        if not self.steps:
            return {"samples_per_second": 0.0, "step_time": 0.0, "loss": float("nan"),
                    "accuracy": float("nan"), "window_steps": 0}  # fmt: skip
        return {
            "samples_per_second": self.samples / wall if wall > 0 else 0.0,
            "step_time": self.compute / self.steps,
            "loss": float(np.sum([float(v) for v in self.losses])) / self.steps,
            "accuracy": float(np.sum([float(v) for v in self.corrects])) / self.samples,
            "window_steps": self.steps,
        }


class WorkerLoop:
    """State and helpers of one worker's run (kept together so events can swap the model).
    Each step of the run is one method, so a test can subclass it to inject a fault."""

    def __init__(self, config: WorkerConfig):
        import keras
        import ray
        import ray.train
        import tensorflow as tf

        from slimray.pruning import Pruner, get_schedule
        from slimray.runtime.backends import get_backend

        self.spec = JobSpec.model_validate(config.spec)
        require_gpu(self.spec.scaling)
        self.config = config
        self.clock = PhaseClock()
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        threads = max(1, int(self.spec.scaling.cpus_per_worker))
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        keras.utils.set_random_seed(self.spec.train.seed)
        self.backend = get_backend(self.spec.backend)(self.rank, self.world)
        self.strategy = self.backend.strategy
        self.reducer = self.make_reducer()
        prune = self.spec.prune
        self.schedule = get_schedule(prune.schedule_config()) if prune else None
        self.pruner = (
            Pruner(prune.criterion_identifier(), prune.planner_config(), self.reducer, strict=prune.strict)
            if prune
            else None
        )
        validation = config.validation
        if isinstance(validation, ray.ObjectRef):
            validation = ray.get(validation)
        self.x_val, self.y_val = validation
        self._restore_or_build()
        self.backend.broadcast_weights(self.model, self.optimizer)
        self._refuse_if_strict()
        self.attempt = self._agree_on_attempt()
        self.pending_event: dict[str, Any] | None = None
        self.window = Window(self.clock.snapshot())

    def _restore_or_build(self) -> None:
        import ray.train

        from slimray.runtime.checkpoints import TrainState, read_checkpoint

        checkpoint = ray.train.get_checkpoint()
        with self.strategy.scope():
            if checkpoint is None:
                self.state = TrainState()
                self.model = build_job_model(
                    self.spec.model, tuple(self.config.input_shape), self.config.num_classes
                )
                self.optimizer = build_optimizer(self.spec.train)
                self.optimizer.build(self.model.trainable_variables)
            else:
                with checkpoint.as_directory() as directory:
                    self.model, self.optimizer, self.state = read_checkpoint(Path(directory))
        self.resumed_from = self.state.step if checkpoint is not None else None
        self._new_model_costs()

    def make_reducer(self) -> Any:
        """The backend's `Reducer` for scores and digests (a test may wrap it to inject a fault)."""
        return self.backend.reducer()

    def make_step(self) -> Any:
        """The backend's train step for the current model (rebuilt after every prune event)."""
        train = self.spec.train
        return self.backend.train_step(self.model, self.optimizer, train.batch_size, train)

    def _refuse_if_strict(self) -> None:
        """With `prune.strict`, a model slimray cannot prune all through fails the job before
        training (BlockedModelError names every blocker), not at its first prune event."""
        if self.pruner is not None and self.pruner.strict:
            from slimray.pruning import build_graph

            build_graph(self.model, strict=True)

    def _agree_on_attempt(self) -> int:
        """One id per worker group life, the same on every rank (rank 0 draws it)."""
        token = float(random.SystemRandom().getrandbits(52)) if self.rank == 0 else 0.0
        return int(self.reducer.allmax(np.asarray([token]))[0])

    def _new_model_costs(self) -> None:
        """Counts and the step function: they change only when the model does."""
        from slimray.pruning import count_model

        self.cost = count_model(self.model)
        self.grad_bytes = gradient_bytes(self.model)
        self.step_fn = self.make_step()
        self.fresh_trace = True

    # -------------------------------------------------------------- messages
    def send(self, kind: str, payload: dict[str, Any]) -> None:
        if self.config.progress is not None:
            self.config.progress.send(
                WorkerMessage(kind, self.rank, self.attempt, self.state.step, time.time(), payload)
            )

    # -------------------------------------------------------------- pruning
    def prune_event(self, sparsity: float, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        import keras

        from slimray.pruning import ScoringBatch, build_graph
        from slimray.runtime.agreement import check_agreement

        step = self.state.step
        graph = build_graph(self.model, strict=self.pruner.strict)
        if not self.state.baseline_sizes:
            self.state.baseline_sizes = {g.id: g.size for g in graph.groups}
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=self.spec.train.from_logits)
        scored = self.plan(sparsity, ScoringBatch(x, y, loss), graph)
        durations = dict(scored.durations)
        start = time.perf_counter()
        check_agreement(scored.plan, self.reducer, step)
        durations["agreement"] = time.perf_counter() - start
        with self.strategy.scope():
            result = self.pruner.apply(self.model, scored.plan, self.optimizer, graph, durations)
        self.model, self.optimizer = result.model, result.optimizer
        self._new_model_costs()
        summary = result.summary()
        kept = sum(len(g["kept"]) for g in summary["groups"])
        self.state.sparsity = 1.0 - kept / sum(self.state.baseline_sizes.values())
        event = {
            "step": step,
            "local_scores_sha": hashlib.sha256(scored.local_scores.tobytes()).hexdigest()[:16],
            "target_sparsity": sparsity,
            "sparsity": self.state.sparsity,
            "groups_pruned": sum(1 for g in summary["groups"] if len(g["kept"]) < g["size"]),
            "allreduce_bytes": scored.allreduce_bytes * self.world,
            **{k: summary[k] for k in ("channels_before", "channels_after", "params_before",
                                       "params_after", "flops_before", "flops_after", "digest")},
            "durations": durations,
            "frozen": summary["frozen"],  # layers kept whole, with the FLOPs share they hold
        }  # fmt: skip
        self.state.events.append(event)
        return event

    def plan(self, sparsity: float, batch: Any, graph: Any) -> Any:
        """This worker's mask (a `ScoredPlan`): score, allreduce the scores, plan; all ranks must
        agree on it."""
        return self.pruner.plan(self.model, sparsity, batch, self.state.baseline_sizes, graph)

    # -------------------------------------------------------------- one step
    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This worker's batches from the current step on: streamed from its Ray Data shard in
        the first epoch, then from memory when the shard fits (`ShardCache`)."""
        steps_per_epoch, total = self.config.steps_per_epoch, self.config.total_steps
        cache, shard = self._batch_sources()
        while self.state.step < total:
            epoch, skip = divmod(self.state.step, steps_per_epoch)
            source = iter(cache.batches(epoch) if cache.complete else self._shard_epoch(shard, epoch))
            for index in range(steps_per_epoch):
                if self.state.step >= total:
                    return
                with self.clock.phase("data"):
                    batch = next(source, None)
                if batch is None:
                    break
                if not cache.complete:
                    cache.add(batch["x"], batch["y"])
                if index >= skip:  # a resumed run skips the steps its checkpoint already holds
                    yield batch["x"], batch["y"].astype(np.int32)
            if not cache.complete:
                cache.end_epoch()

    def _batch_sources(self) -> tuple[ShardCache, Any]:
        """The worker's batch cache, and its Ray Data shard (None when the driver passed the
        arrays, which are then sharded here and cached whole)."""
        import ray
        import ray.train

        from slimray.runtime.data import worker_shard

        train, steps_per_epoch = self.spec.train, self.config.steps_per_epoch
        if self.config.train_arrays is None:
            # every worker decides alike: equal shards, same epochs, whole-group restarts
            cache = ShardCache(train.cache_mb * 2**20, train.batch_size, steps_per_epoch, train.seed)
            return cache, ray.train.get_dataset_shard("train")
        with self.clock.phase("data"):
            x, y = worker_shard(*ray.get(self.config.train_arrays), self.rank, self.world,
                                steps_per_epoch * train.batch_size)  # fmt: skip
        return ShardCache.from_arrays(x, y, train.batch_size, steps_per_epoch, train.seed), None

    def _shard_epoch(self, shard: Any, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """One epoch of the Ray Data shard, shuffled locally with a per-epoch seed."""
        train = self.spec.train
        return shard.iter_batches(
            batch_size=train.batch_size, batch_format="numpy", drop_last=True,
            local_shuffle_buffer_size=4 * train.batch_size,
            local_shuffle_seed=train.seed * 1000 + epoch,
        )  # fmt: skip

    def maybe_prune(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.schedule is None:
            return
        due, sparsity = self.schedule(self.state.step)
        if due and sparsity > self.state.sparsity + 1e-9:
            with self.clock.phase("prune_events"):
                self.pending_event = self.prune_event(sparsity, x, y)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        import tensorflow as tf

        start = time.perf_counter()
        loss, correct = self.step_fn(tf.constant(x), tf.constant(y))
        took = time.perf_counter() - start
        if self.fresh_trace:  # the first step of each model traces its tf.function
            self.clock.add("tracing", took)
            if self.pending_event is not None:
                self.pending_event["durations"]["retrace"] = took
            self.fresh_trace = False
        else:
            self.clock.add("training", took)
            self.window.add(len(x), took, loss, correct)
        self.state.step += 1

    def after_step(self) -> None:
        """Evaluate, send a window and checkpoint when due (events and the end force all three)."""
        train, step = self.spec.train, self.state.step
        final = step >= self.config.total_steps
        forced = self.pending_event is not None or final
        eval_due = forced or bool(train.eval_every and step % train.eval_every == 0)
        if forced or eval_due or step % train.report_every == 0:
            self.send_window(final, self.evaluate() if eval_due and self.rank == 0 else None)
        if forced or step % train.checkpoint_every == 0:
            self.checkpoint(final)
        self.pending_event = None

    # -------------------------------------------------------------- reporting
    def evaluate(self) -> float:
        with self.clock.phase("evaluation"):
            return evaluate(self.model, self.x_val, self.y_val)

    def send_window(self, final: bool, val_accuracy: float | None) -> None:
        with self.clock.phase("progress"):
            self._send_window(final, val_accuracy)

    def _send_window(self, final: bool, val_accuracy: float | None) -> None:
        phases = self.clock.snapshot()
        payload = {
            "pid": os.getpid(),
            **self.window.metrics(phases),
            "params": self.cost.params,
            "flops": self.cost.flops,
            "gradient_allreduce_bytes_per_step": self.grad_bytes,
            "sparsity": self.state.sparsity,
            "peak_memory_bytes": peak_memory_bytes(),
            "allreduce_bytes_total": self.reducer.bytes_reduced,
            "event": self.pending_event,
            "final": final,
            "resumed_from": self.resumed_from,
            "val_accuracy": val_accuracy,
        }
        if final:  # every rank's weights, to show the replicas ended identical
            payload["weights_sha"] = weights_digest(self.model)
        self.send(WINDOW, payload)
        self.window = Window(phases)

    def export(self, directory: Path) -> None:
        """The final checkpoint also carries the SavedModel and the reloaded model's accuracy, so
        the driver only copies files (it never imports TensorFlow)."""
        import json

        import keras

        from slimray.runtime.checkpoints import EXPORT_FILE, MODEL_FILE, SAVED_MODEL_DIR

        with self.clock.phase("export"):
            self.model.export(str(directory / SAVED_MODEL_DIR), verbose=False)
            reloaded = keras.models.load_model(directory / MODEL_FILE, compile=False)
            exported = {"exported_accuracy": evaluate(reloaded, self.x_val, self.y_val),
                        "exported_params": reloaded.count_params()}  # fmt: skip
            (directory / EXPORT_FILE).write_text(json.dumps(exported))

    def checkpoint(self, final: bool) -> None:
        """Every rank calls `ray.train.report` (it is collective); rank 0 attaches the checkpoint.

        The upload runs in Ray Train's background thread (ASYNC), which also deletes the local copy.
        """
        import ray.train
        from ray.train import Checkpoint, CheckpointUploadMode

        from slimray.runtime.checkpoints import write_checkpoint

        checkpoint = None
        if self.rank == 0:
            with self.clock.phase("checkpoints"):
                local = Path(tempfile.mkdtemp(prefix="slimray-ckpt-"))
                write_checkpoint(local, self.model, self.optimizer, self.state)
            if final:
                self.export(local)  # its own phase: never inside another (phases add up)
            checkpoint = Checkpoint.from_directory(str(local))
        with self.clock.phase("checkpoints"):
            ray.train.report({"step": self.state.step}, checkpoint=checkpoint,
                             checkpoint_upload_mode=CheckpointUploadMode.ASYNC)  # fmt: skip

    # -------------------------------------------------------------- main loop
    def start(self) -> WorkerLoop:
        """The set-up step that talks to the other workers (a no-op until it is split out)."""
        return self

    def run(self) -> None:
        loop_start = time.perf_counter()
        self.send(STARTED, {"resumed_from": self.resumed_from, "pid": os.getpid()})
        for x, y in self.batches():
            self.maybe_prune(x, y)
            self.train_step(x, y)
            self.after_step()
        self.send(FINISHED, {"phases": self.clock.snapshot(),
                             "loop_seconds": time.perf_counter() - loop_start})  # fmt: skip

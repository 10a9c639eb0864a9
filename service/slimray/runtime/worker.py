"""The per-worker loop: the job's backend's train step (TF collectives or Horovod), and at
scheduled steps score -> allreduce -> choose a mask -> agree -> shrink, then train smaller.

Only Train workers import this module (the driver imports `worker_config`): TensorFlow, Keras and
Ray load at its top.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import ray
import ray.train
import tensorflow as tf
from ray.train import Checkpoint, CheckpointUploadMode

from slimray.core.records import PruneEvent, Rollback, WindowReport
from slimray.core.scaling import group_batch
from slimray.core.spec import JobSpec
from slimray.core.startup import WorkerMarks
from slimray.pruning import Pruner, ScoringBatch, build_graph, count_model
from slimray.runtime import prune_step
from slimray.runtime.accuracy_guard import AccuracyGuard, agreed_accuracy, level_now
from slimray.runtime.agreement import check_agreement
from slimray.runtime.backends import WorkerBackend, get_backend
from slimray.runtime.breakdown import PhaseClock
from slimray.runtime.checkpoints import TrainState, agree_on_restored_step, read_checkpoint, write_checkpoint
from slimray.runtime.collective_errors import collective_errors
from slimray.runtime.data import worker_shard
from slimray.runtime.early_bird import early_bird
from slimray.runtime.gpu import require_gpu
from slimray.runtime.modeling import build_job_model, build_optimizer, evaluate, export_model, gradient_bytes
from slimray.runtime.progress import FINISHED, STARTED, WINDOW, WorkerMessage
from slimray.runtime.prune_step import Amount, event_rule, prune_event_record, sparsity_after, with_retrace
from slimray.runtime.restore import PRE_EVENT_DIR, read_newest_readable
from slimray.runtime.shard_cache import ShardCache
from slimray.runtime.window import Window, peak_memory_bytes, weights_digest
from slimray.runtime.worker_config import WorkerConfig


def _local(value: Any) -> Any:
    """`value` itself, or what it refers to when the driver passed it through the object store."""
    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


class WorkerLoop:
    """One worker's run. `__init__` keeps the config and local state, `start()` joins the other
    workers, `run()` trains; each step is one method, so a test subclass can inject a fault."""

    def __init__(self, config: WorkerConfig, marks: WorkerMarks | None = None):
        self.config = config
        self.marks = marks  # this process's start-up timestamps (rank 0's go to the report)
        self.first_trace: float | None = None  # seconds: tracing this group's first model
        self.spec = JobSpec.model_validate(config.spec)
        require_gpu(self.spec.scaling)
        ctx = ray.train.get_context()  # local: the rank Ray Train assigned this process
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        # this group's share of the job's global batch (an elastic job's groups differ in size)
        self.group = group_batch(self.spec.train.batch_size, self.spec.scaling, self.world)
        self.steps_per_epoch = self.group.epoch_steps(config.n_train) or config.steps_per_epoch
        self.clock = PhaseClock()
        self.state = TrainState()  # until `start()` restores the group's last checkpoint
        threads = max(1, int(self.spec.scaling.cpus_per_worker))
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        keras.utils.set_random_seed(self.spec.train.seed)
        prune = self.spec.prune
        self.prune_rule = event_rule(prune, lambda: self.state.auto.started_at) if prune else None
        self.early_bird = early_bird(prune, self.prune_rule, config.total_steps)  # an auto schedule's
        self.pending_event: PruneEvent | None = None  # applied; recorded once its retrace is known
        self.rollback: Rollback | None = None  # undone by the accuracy budget at this step
        budgeted = prune is not None and prune.max_accuracy_drop is not None  # the model before an event:
        self.pre_event = Path(tempfile.mkdtemp(prefix="slimray-pre-event-")) if budgeted else None
        if self.pre_event is not None:  # gone with the loop, whatever ends it (a warm process stays)
            weakref.finalize(self, shutil.rmtree, self.pre_event, True)

    # -------------------------------------------------------------- set-up with the other workers
    def start(self) -> WorkerLoop:
        """The set-up that talks to the other workers: the backend's group, the model (restored or
        built, then rank 0's weights everywhere), the strict check, the attempt id."""
        with self.collective_deadline():
            return self._start()

    def _start(self) -> WorkerLoop:
        self.backend = self.make_backend()
        if self.marks is not None:
            self.marks.joined = time.time()
        self.strategy = self.backend.strategy
        self.reducer = self.make_reducer()
        prune = self.spec.prune
        self.pruner = None if prune is None else Pruner(prune.criterion_identifier(), prune.planner_config(),
                                                        self.reducer, strict=prune.strict)  # fmt: skip
        self.x_val, self.y_val = _local(self.config.validation)
        self._restore_or_build()
        agree_on_restored_step(self.rank, self.state.step, self.reducer)
        self.guard = AccuracyGuard(prune, self.state.budget) if self.pre_event else None
        self.backend.broadcast_weights(self.model, self.optimizer)
        self._refuse_if_strict()
        self.attempt = self._agree_on_attempt()
        self.window = Window(self.clock.snapshot())
        return self

    def make_backend(self) -> WorkerBackend:
        """The job's allreduce backend; building it joins the worker group (a collective)."""
        deadline = self.spec.failure.collective_deadline_seconds
        return get_backend(self.spec.backend)(self.rank, self.world, deadline)

    def make_reducer(self) -> Any:
        """The backend's `Reducer` for scores and digests (a test may wrap it to inject a fault)."""
        return self.backend.reducer()

    def make_step(self) -> Any:
        """The backend's train step for the current model (rebuilt after every prune event)."""
        train = self.spec.train
        return self.backend.train_step(self.model, self.optimizer, self.group.per_worker, train)

    def _restore_or_build(self) -> None:
        """The model, optimizer and train state of the group's last checkpoint (a restarted
        group resumes where it was, shrunk architecture included), else fresh ones."""
        checkpoint = ray.train.get_checkpoint()
        self.warnings: list[str] = []  # checkpoints skipped as unreadable (the report shows them)
        with self.backend.building("restoring or building the model"):
            found = checkpoint and read_newest_readable(checkpoint, self.warnings, self.pre_event)
            if found:
                self.model, self.optimizer, self.state = found
            else:
                self.state = TrainState()
                shape = tuple(self.config.input_shape)
                self.model = build_job_model(self.spec.model, shape, self.config.num_classes)
                self.optimizer = build_optimizer(self.spec.train)
                self.optimizer.build(self.model.trainable_variables)
        self.resumed_from = self.state.step if found else None
        self._new_model_costs()

    def _refuse_if_strict(self) -> None:
        """With `prune.strict`, a model slimray cannot prune all through fails the job before
        training (BlockedModelError names every blocker), not at its first prune event."""
        if self.pruner is not None and self.pruner.strict:
            build_graph(self.model, strict=True)

    def _agree_on_attempt(self) -> int:
        """One id per worker group life, the same on every rank (rank 0 draws it)."""
        token = float(random.SystemRandom().getrandbits(52)) if self.rank == 0 else 0.0
        return int(self.reducer.allmax(np.asarray([token]))[0])

    def _new_model_costs(self) -> None:
        """Counts and the step function: they change only when the model does."""
        self.cost = count_model(self.model)
        self.grad_bytes = gradient_bytes(self.model)
        self.step_fn = self.make_step()
        self.fresh_trace = True

    # -------------------------------------------------------------- pruning
    def maybe_prune(self, x: np.ndarray, y: np.ndarray) -> None:
        """Apply a prune event when the job's rule calls for one at this step (`event_rule`); the
        batch about to be trained on scores the channels."""
        if self.prune_rule is None:
            return
        if self.early_bird is not None:  # an auto schedule: has the mask stopped changing?
            self.early_bird.watch(self.state.step, self.state.auto, lambda first: self.mask_now(first, x, y))
        amount = self.prune_rule.amount_at(self.state.step, self.state.sparsity)
        if self.guard is not None:  # the budget caps, defers or retries events, and keeps the model
            now = level_now(self.guard.template, self.state, self.cost)
            amount = self.guard.admit(amount, now)
            if amount is not None:
                with self.clock.phase("checkpoints"):
                    write_checkpoint(self.pre_event, self.model, self.optimizer, self.state)
                self.guard.before_event(self.state.step, amount, now, self.agreed_accuracy())
        if amount is not None:
            with self.clock.phase("prune_events"):
                self.pending_event = self.prune_event(amount, x, y)

    def mask_now(self, amount: Amount, x: np.ndarray, y: np.ndarray) -> Any:
        """The mask (`PrunePlan`) an event of `amount` would choose now, the same on every rank."""
        plan = self.choose_mask(amount, self.scoring(x, y), build_graph(self.model, self.pruner.strict)).plan
        check_agreement(plan, self.reducer, self.state.step)
        return plan

    def scoring(self, x: np.ndarray, y: np.ndarray) -> ScoringBatch:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=self.spec.train.from_logits)
        return ScoringBatch(x, y, loss)

    def agreed_accuracy(self) -> float:
        """Rank 0's validation accuracy, on every rank (the budget's decisions must agree)."""
        return agreed_accuracy(self.rank, self.evaluate, self.reducer)

    def maybe_roll_back(self, final: bool) -> None:
        """Judge an event whose check is due; undo one the budget cannot afford: the model,
        optimizer and state from before it, on every rank alike (the step goes on)."""
        if self.guard is None or not self.guard.is_due(self.state.step, final):
            return
        self.rollback = self.guard.judge(self.state.step, self.agreed_accuracy(), final)
        if self.rollback is not None:
            undoing = f"rolling back the event of step {self.rollback.event_step}"
            with self.backend.building(undoing), self.clock.phase("checkpoints"):
                self.model, self.optimizer, state = read_checkpoint(self.pre_event)
            state.step, state.budget, self.state = self.state.step, self.guard.state, state
            self._new_model_costs()

    def prune_event(self, amount: Amount, x: np.ndarray, y: np.ndarray) -> PruneEvent:
        """Choose a mask, prove every rank holds it, shrink model and optimizer; the event's record."""
        step, amount = self.state.step, prune_step.against_dense(amount, self.state.events)
        graph = build_graph(self.model, strict=self.pruner.strict)
        if not self.state.baseline_sizes:
            self.state.baseline_sizes = {g.id: g.size for g in graph.groups}
        scored = self.choose_mask(amount, self.scoring(x, y), graph)
        durations = dict(scored.durations)
        start = time.perf_counter()
        check_agreement(scored.plan, self.reducer, step)
        durations["agreement"] = time.perf_counter() - start
        with self.backend.building(f"rebuilding the model at step {step}"):
            result = self.pruner.apply(self.model, scored.plan, self.optimizer, graph, durations)
        self.model, self.optimizer = result.model, result.optimizer
        self._new_model_costs()
        self.state.sparsity = sparsity_after(result.groups, self.state.baseline_sizes)
        return prune_event_record(step, amount, self.state.sparsity, scored, result, self.world,
                                  self.state.baseline_sizes)  # fmt: skip

    def choose_mask(self, amount: Amount, batch: Any, graph: Any) -> Any:
        """This worker's mask (a `PruneDecision`): score locally, allreduce the scores, select the
        channels to keep; every rank must arrive at the same one (checked next)."""
        return self.pruner.decide(self.model, amount, batch, self.state.baseline_sizes, graph)

    # -------------------------------------------------------------- one step
    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This worker's batches from the current step on: streamed from its Ray Data shard in
        the first epoch, then from memory when the shard fits (`ShardCache`)."""
        steps_per_epoch, total = self.steps_per_epoch, self.config.total_steps
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
        train, steps_per_epoch, batch = self.spec.train, self.steps_per_epoch, self.group.per_worker
        if self.config.train_arrays is None:
            # every worker decides alike: equal shards, same epochs, whole-group restarts
            cache = ShardCache(train.cache_mb * 2**20, batch, steps_per_epoch, train.seed)
            return cache, ray.train.get_dataset_shard("train")
        with self.clock.phase("data"):
            x, y = worker_shard(*_local(self.config.train_arrays), self.rank, self.world,
                                steps_per_epoch * batch)  # fmt: skip
        return ShardCache.from_arrays(x, y, batch, steps_per_epoch, train.seed), None

    def _shard_epoch(self, shard: Any, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """One epoch of the Ray Data shard, shuffled locally with a per-epoch seed."""
        train, batch = self.spec.train, self.group.per_worker
        return shard.iter_batches(
            batch_size=batch, batch_format="numpy", drop_last=True,
            local_shuffle_buffer_size=4 * batch,
            local_shuffle_seed=train.seed * 1000 + epoch,
        )  # fmt: skip

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        """One step on this batch; a model's first step traces it, which is timed apart (and is
        a prune event's retrace) so that windows measure training alone."""
        start = time.perf_counter()
        loss, correct = self.step_fn(tf.constant(x), tf.constant(y))
        took = time.perf_counter() - start
        if self.fresh_trace:  # the first step of each model traces its tf.function
            self.clock.add("tracing", took)
            if self.pending_event is not None:
                self.pending_event = with_retrace(self.pending_event, took)
            elif self.first_trace is None:
                self.first_trace = took
            self.fresh_trace = False
        else:
            self.clock.add("training", took)
            self.window.add(len(x), took, loss, correct)
        self.state.step += 1

    def after_step(self) -> None:
        """Record a completed prune event; evaluate, send a window and checkpoint when due
        (events and the end force all three)."""
        train, step = self.spec.train, self.state.step
        if self.pending_event is not None:  # complete: this step ran its retrace
            self.state.events.append(self.pending_event)
        final = step >= self.config.total_steps
        self.maybe_roll_back(final)
        forced = self.pending_event is not None or self.rollback is not None or final
        eval_due = forced or bool(train.eval_every and step % train.eval_every == 0)
        if forced or eval_due or step % train.report_every == 0:
            self.send_window(final, self.evaluate() if eval_due and self.rank == 0 else None)
        if forced or step % train.checkpoint_every == 0:
            self.checkpoint(final)
        self.pending_event, self.rollback = None, None

    # -------------------------------------------------------------- reporting
    def send(self, kind: str, payload: Any, when: float | None = None) -> None:
        """Push a message to the driver (not awaited); `when` defaults to now."""
        if self.config.progress is not None:
            when = time.time() if when is None else when
            message = WorkerMessage(kind, self.rank, self.attempt, self.state.step, when, payload)
            self.config.progress.send(message)

    def evaluate(self) -> float:
        """Validation accuracy of the current model (rank 0 only: it is local, no collectives)."""
        with self.clock.phase("evaluation"):
            return evaluate(self.model, self.x_val, self.y_val)

    def send_window(self, final: bool, val_accuracy: float | None) -> None:
        """Send this rank's window report and open the next window."""
        with self.clock.phase("progress"):
            phases, now = self.clock.snapshot(), time.time()
            self.send(WINDOW, self.window_report(phases, now, final, val_accuracy), now)
            self.window = Window(phases)

    def window_report(self, phases: dict[str, float], now: float, final: bool,
                      val_accuracy: float | None) -> WindowReport:  # fmt: skip
        """This rank's window since the last one, with the prune event applied before it."""
        return WindowReport(
            rank=self.rank, step=self.state.step, time=now, pid=os.getpid(),
            **self.window.metrics(phases),
            params=self.cost.params, flops=self.cost.flops,
            gradient_allreduce_bytes_per_step=self.grad_bytes, sparsity=self.state.sparsity,
            peak_memory_bytes=peak_memory_bytes(), allreduce_bytes_total=self.reducer.bytes_reduced,
            event=self.pending_event, rollback=self.rollback, final=final, resumed_from=self.resumed_from,
            mask_checks=self.early_bird.drain() if self.early_bird else [],
            world=self.world, val_accuracy=val_accuracy,
            weights_sha=weights_digest(self.model) if final else None,  # replicas ended identical?
        )  # fmt: skip

    def checkpoint(self, final: bool) -> None:
        """Every rank calls `ray.train.report` (it is collective); rank 0 attaches the checkpoint.

        The upload runs in Ray Train's background thread (ASYNC), which also deletes the local copy.
        """
        checkpoint = self._write_checkpoint(final) if self.rank == 0 else None
        with self.clock.phase("checkpoints"):
            ray.train.report({"step": self.state.step}, checkpoint=checkpoint,
                             checkpoint_upload_mode=CheckpointUploadMode.ASYNC)  # fmt: skip

    def _write_checkpoint(self, final: bool) -> Checkpoint:
        """Rank 0's checkpoint in a local directory; the final one also carries the SavedModel
        and the reloaded model's accuracy, so the driver only copies files (no TensorFlow)."""
        with self.clock.phase("checkpoints"):
            local = Path(tempfile.mkdtemp(prefix="slimray-ckpt-"))
            pending = self.guard is not None and self.guard.pending  # a resumed group judges it too
            write_checkpoint(local, self.model, self.optimizer, self.state,
                             attach={PRE_EVENT_DIR: self.pre_event} if pending else None)  # fmt: skip
        if final:
            self.export(local)  # its own phase: never inside another (phases add up)
        return Checkpoint.from_directory(str(local))

    def export(self, directory: Path) -> None:
        """The SavedModel and the reloaded model's accuracy, beside the final checkpoint."""
        with self.clock.phase("export"):
            export_model(directory, self.model, self.x_val, self.y_val)

    # -------------------------------------------------------------- main loop
    def run(self) -> None:
        """Train to the last step (call `start()` first); STARTED and FINISHED frame the loop
        so the driver can time it."""
        loop_start = time.perf_counter()
        batch = {"workers": self.world, "per_worker_batch": self.group.per_worker,
                 "global_batch": self.group.global_batch}  # fmt: skip
        started = {"resumed_from": self.resumed_from, "pid": os.getpid(), "warnings": self.warnings,
                   "batch": batch, "marks": self.marks.model_dump() if self.marks else None}  # fmt: skip
        self.send(STARTED, started)
        with self.collective_deadline():
            for x, y in self.batches():
                self.maybe_prune(x, y)
                self.train_step(x, y)
                self.after_step()
        self.send(FINISHED, {"phases": self.clock.snapshot(), "first_trace": self.first_trace,
                             "loop_seconds": time.perf_counter() - loop_start})  # fmt: skip

    def collective_deadline(self) -> contextlib.AbstractContextManager[None]:
        """Collectives that time out or lose their peers fail this worker naming rank and step."""
        deadline = self.spec.failure.collective_deadline_seconds
        return collective_errors(self.rank, lambda: self.state.step, deadline)

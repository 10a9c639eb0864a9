"""The per-worker loop: a custom `tf.function` step under MultiWorkerMirroredStrategy, and at
scheduled steps score -> allreduce -> plan -> agree -> shrink, then keep training smaller."""

from __future__ import annotations

import hashlib
import importlib
import os
import resource
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimray.spec import JobSpec, ModelSpec, TrainSpec


def peak_memory_bytes() -> int:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def build_job_model(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The job's model from a built-in name, `module:function` or a `.keras` file."""
    import keras

    from slimray.models import build_model

    if spec.kind == "builtin":
        model = build_model(spec.source, input_shape=input_shape, num_classes=num_classes, **spec.kwargs)
    elif spec.kind == "function":
        module_name, _, attr = spec.source.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"model.source: cannot import {spec.source!r}: {err}") from err
        model = fn(**spec.kwargs)
    else:
        model = keras.models.load_model(spec.source, compile=False)
    if not isinstance(model, keras.Model):
        raise ValueError(f"model.source: {spec.source!r} gave {type(model).__name__}, not a keras.Model")
    got = tuple(model.inputs[0].shape[1:])
    if got != tuple(input_shape):
        raise ValueError(f"model.source: {spec.source!r} takes inputs {got}; the data has {input_shape}")
    return model


def build_optimizer(train: TrainSpec) -> Any:
    import keras

    lr = train.learning_rate
    factories = {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=train.momentum),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, momentum=train.momentum),
        "nadam": lambda: keras.optimizers.Nadam(lr),
    }
    return factories[train.optimizer]()


def make_train_step(model, optimizer, strategy, global_batch: int, train: TrainSpec):
    """A distributed step: forward/backward per replica, gradients summed by the optimizer."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=train.from_logits, reduction=None)

    @tf.function(jit_compile=train.jit_compile)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.nn.compute_average_loss(loss_fn(y, out), global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), y), tf.float32))
        return loss, correct, grads

    def replica_step(x, y):
        loss, correct, grads = gradients(x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, correct

    @tf.function
    def step(x, y):
        loss, correct = strategy.run(replica_step, args=(x, y))
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, loss, axis=None), strategy.reduce(total, correct, axis=None)

    return step


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy on held-out data (local, no collectives)."""
    if len(x) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(x), batch):
        out = np.asarray(model(x[i : i + batch], training=False))
        correct += int((out.argmax(-1) == y[i : i + batch]).sum())
    return correct / len(x)


@dataclass
class Window:
    """Training progress since the last report; prune events and retrace steps excluded."""

    start: float = field(default_factory=time.perf_counter)
    samples: int = 0
    steps: int = 0
    compute: float = 0.0
    excluded: float = 0.0
    loss: float = 0.0
    correct: float = 0.0

    def metrics(self, world: int) -> dict[str, float]:
        wall = time.perf_counter() - self.start - self.excluded
        return {
            "samples_per_second": self.samples / wall if self.steps and wall > 0 else 0.0,
            "step_time": self.compute / self.steps if self.steps else 0.0,
            "loss": self.loss / self.steps if self.steps else float("nan"),
            "accuracy": self.correct / (self.samples * world) if self.steps else float("nan"),
            "window_steps": self.steps,
        }


class _Loop:
    """State and helpers of one worker's run (kept together so events can swap the model)."""

    def __init__(self, config: dict[str, Any]):
        import keras
        import ray
        import ray.train
        import tensorflow as tf

        from slimray.pruning import Pruner, count_model, get_schedule
        from slimray.runtime.checkpoints import TrainState, read_checkpoint
        from slimray.runtime.collectives import TFCollectiveReducer

        self.spec = JobSpec.model_validate(config["spec"])
        self.config = config
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        threads = max(1, int(self.spec.scaling.cpus_per_worker))
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        keras.utils.set_random_seed(self.spec.train.seed)
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        self.reducer = TFCollectiveReducer(self.rank, self.world)
        prune = self.spec.prune
        self.schedule = get_schedule(prune.schedule_config()) if prune else None
        self.pruner = (
            Pruner(prune.criterion_identifier(), prune.planner_config(), self.reducer) if prune else None
        )
        validation = config["validation"]
        if isinstance(validation, ray.ObjectRef):
            validation = ray.get(validation)
        self.x_val, self.y_val = validation
        self.faults = config.get("faults") or {}
        checkpoint = ray.train.get_checkpoint()
        with self.strategy.scope():
            if checkpoint is None:
                self.state = TrainState()
                self.model = build_job_model(
                    self.spec.model, tuple(config["input_shape"]), config["num_classes"]
                )
                self.optimizer = build_optimizer(self.spec.train)
                self.optimizer.build(self.model.trainable_variables)
            else:
                with checkpoint.as_directory() as directory:
                    self.model, self.optimizer, self.state = read_checkpoint(Path(directory))
        self.resumed_from = self.state.step if checkpoint is not None else None
        self.cost = count_model(self.model)  # changes only at prune events
        self._new_step_fn()

    def _new_step_fn(self) -> None:
        global_batch = self.spec.train.batch_size * self.world
        self.step_fn = make_train_step(
            self.model, self.optimizer, self.strategy, global_batch, self.spec.train
        )
        self.fresh_trace = True

    # -------------------------------------------------------------- pruning
    def prune_event(self, sparsity: float, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        import keras

        from slimray.pruning import ScoringBatch, build_graph
        from slimray.runtime.agreement import check_agreement

        step = self.state.step
        graph = build_graph(self.model)
        if not self.state.baseline_sizes:
            self.state.baseline_sizes = {g.id: g.size for g in graph.groups}
        durations: dict[str, float] = {}
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=self.spec.train.from_logits)
        plan = self.pruner.plan(
            self.model, sparsity, ScoringBatch(x, y, loss), self.state.baseline_sizes, graph,
            durations,
        )  # fmt: skip
        plan = self._maybe_perturb(plan)
        start = time.perf_counter()
        check_agreement(plan, self.reducer, step)
        durations["agreement"] = time.perf_counter() - start
        with self.strategy.scope():
            result = self.pruner.apply(self.model, plan, self.optimizer, graph, durations)
        self.model, self.optimizer, self.cost = result.model, result.optimizer, result.after
        self._new_step_fn()
        summary = result.summary()
        kept = sum(len(g["kept"]) for g in summary["groups"])
        self.state.sparsity = 1.0 - kept / sum(self.state.baseline_sizes.values())
        local = self.pruner.last_local_scores
        event = {
            "step": step,
            "local_scores_sha": hashlib.sha256(local.tobytes()).hexdigest()[:16],
            "target_sparsity": sparsity,
            "sparsity": self.state.sparsity,
            "groups_pruned": sum(1 for g in summary["groups"] if len(g["kept"]) < g["size"]),
            "allreduce_bytes": int(durations.pop("allreduce_bytes", 0)) * self.world,
            **{k: summary[k] for k in ("channels_before", "channels_after", "params_before",
                                       "params_after", "flops_before", "flops_after", "digest")},
            "durations": durations,
        }  # fmt: skip
        self.state.events.append(event)
        return event

    def _maybe_perturb(self, plan):
        """Fault injection for tests: one worker flips one channel of its mask."""
        fault = self.faults.get("perturb_mask")
        if not fault or fault["rank"] != self.rank or fault["event"] != len(self.state.events):
            return plan
        from slimray.pruning import PrunePlan

        gid = sorted(plan.keep)[0]
        kept = list(plan.keep[gid])
        dropped = sorted(set(range(plan.sizes[gid])) - set(kept))
        kept[-1] = dropped[0]
        return PrunePlan({**plan.keep, gid: tuple(sorted(kept))}, plan.sizes)

    def _maybe_die(self) -> None:
        """Fault injection for tests: this worker process is killed (SIGKILL) once."""
        fault = self.faults.get("kill")
        if not fault or fault["rank"] != self.rank or self.state.step != fault["step"]:
            return
        marker = Path(fault["marker"])
        if marker.exists():
            return
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)

    # -------------------------------------------------------------- reporting
    def report(self, window: Window, event: dict | None, final: bool, checkpoint: bool) -> None:
        import ray.train
        from ray.train import Checkpoint

        from slimray.runtime.checkpoints import write_checkpoint

        cost = self.cost
        metrics = {
            "step": self.state.step,
            "rank": self.rank,
            "pid": os.getpid(),
            **window.metrics(self.world),
            "params": cost.params,
            "flops": cost.flops,
            "sparsity": self.state.sparsity,
            "peak_memory_bytes": peak_memory_bytes(),
            "allreduce_bytes_total": self.reducer.bytes_reduced,
            "event": event,
            "final": final,
            "resumed_from": self.resumed_from,
        }
        if self.rank == 0 and (event is not None or final):
            metrics["val_accuracy"] = evaluate(self.model, self.x_val, self.y_val)
        if checkpoint and self.rank == 0:
            with tempfile.TemporaryDirectory(prefix="slimray-ckpt-") as tmp:
                path = write_checkpoint(Path(tmp) / "checkpoint", self.model, self.optimizer,
                                        self.state)  # fmt: skip
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(path)))
        else:
            ray.train.report(metrics)

    # -------------------------------------------------------------- main loop
    def run(self) -> None:
        import ray.train
        import tensorflow as tf

        from slimray.runtime.shard_cache import ShardCache

        train = self.spec.train
        steps_per_epoch, total = self.config["steps_per_epoch"], self.config["total_steps"]
        shard = ray.train.get_dataset_shard("train")
        # every worker decides alike: equal shards, same epochs, whole-group restarts
        cache = ShardCache(train.cache_mb * 2**20, train.batch_size, steps_per_epoch, train.seed)
        window = Window()
        pending_event: dict | None = None
        while self.state.step < total:
            epoch, skip = divmod(self.state.step, steps_per_epoch)
            if cache.complete:
                batches = cache.batches(epoch)
            else:
                batches = shard.iter_batches(
                    batch_size=train.batch_size, batch_format="numpy", drop_last=True,
                    local_shuffle_buffer_size=4 * train.batch_size,
                    local_shuffle_seed=train.seed * 1000 + epoch,
                )  # fmt: skip
            for index, batch in enumerate(batches):
                if index >= steps_per_epoch:
                    break
                if not cache.complete:
                    cache.add(batch["x"], batch["y"])
                if index < skip:
                    continue
                if self.state.step >= total:
                    break
                self._maybe_die()
                x, y = batch["x"], batch["y"].astype(np.int32)
                if self.schedule is not None:
                    due, sparsity = self.schedule(self.state.step)
                    if due and sparsity > self.state.sparsity + 1e-9:
                        start = time.perf_counter()
                        pending_event = self.prune_event(sparsity, x, y)
                        window.excluded += time.perf_counter() - start
                start = time.perf_counter()
                loss, correct = self.step_fn(tf.constant(x), tf.constant(y))
                loss, correct = float(loss), float(correct)
                took = time.perf_counter() - start
                if self.fresh_trace:  # the first step of each model traces its tf.function
                    window.excluded += took
                    if pending_event is not None:
                        pending_event["durations"]["retrace"] = took
                    self.fresh_trace = False
                else:
                    window.samples += len(x)
                    window.steps += 1
                    window.compute += took
                    window.loss += loss
                    window.correct += correct
                self.state.step += 1
                step = self.state.step
                final = step >= total
                if pending_event is not None or final or step % train.report_every == 0:
                    ckpt = pending_event is not None or final or step % train.checkpoint_every == 0
                    self.report(window, pending_event, final, ckpt)
                    window, pending_event = Window(), None
            if not cache.complete:
                cache.end_epoch()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point (runs in every worker process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _Loop(config).run()

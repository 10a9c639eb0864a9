"""The worker: its building blocks (the job's model from every kind of source, optimizers,
evaluation) and its loop, run in this process on a one-worker backend without collectives."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import ray
import ray.train
import tensorflow as tf

from slimray.core.records import PruneEvent, WindowReport
from slimray.core.spec import JobSpec, ModelSpec, TrainSpec
from slimray.pruning import IdentityReducer, Pruner, build_graph
from slimray.runtime.backends import WorkerBackend
from slimray.runtime.backends.tf_collective.step import MirroredTrainStep
from slimray.runtime.checkpoints import EXPORT_FILE, STATE_FILE, TrainState
from slimray.runtime.modeling import build_job_model, build_optimizer, evaluate
from slimray.runtime.progress import FINISHED, STARTED, WINDOW
from slimray.runtime.prune_step import prune_event_record, sparsity_after, with_retrace
from slimray.runtime.worker import WorkerLoop
from slimray.runtime.worker_config import WorkerConfig
from slimray.zoo.datasets import synthetic
from tests.runtime import custom_models


def test_builtin_model_gets_the_data_shape_and_classes():
    model = build_job_model(ModelSpec(source="seed_cnn", kwargs={"fc": 32}), (8, 8, 1), 3)
    assert model.outputs[0].shape[-1] == 3 and model.get_layer("fc").units == 32


def test_module_function_model():
    spec = ModelSpec(source="tests.runtime.custom_models:tiny", kwargs={"units": 5})
    assert build_job_model(spec, (16,), 4).get_layer("hidden").units == 5


def test_keras_file_model(tmp_path):
    from tests.runtime.custom_models import tiny

    path = tmp_path / "m.keras"
    tiny(units=6).save(path)
    assert build_job_model(ModelSpec(source=str(path)), (16,), 4).get_layer("hidden").units == 6


@pytest.mark.parametrize(
    ("source", "shape", "message"),
    [("tests.runtime.custom_models:missing", (16,), "cannot import"),
     ("no_such_module_xyz:build", (16,), "cannot import"),
     ("tests.runtime.custom_models:not_a_model", (16,), "gave str, not a keras.Model"),
     ("tests.runtime.custom_models:tiny", (28, 28, 1), r"takes inputs \(16,\); the data has")],
)  # fmt: skip
def test_model_source_errors_name_the_field(source, shape, message):
    with pytest.raises(ValueError, match=f"model.source: .*{message}"):
        build_job_model(ModelSpec(source=source), shape, 4)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "nadam"])
def test_every_spec_optimizer_is_built_with_the_learning_rate(name):
    optimizer = build_optimizer(TrainSpec(steps=1, optimizer=name, learning_rate=0.0125))
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.0125)


def test_evaluate_counts_top1_hits():
    from tests.runtime.custom_models import tiny

    model = tiny()
    x = np.random.default_rng(0).normal(size=(50, 16)).astype("float32")
    predicted = np.asarray(model(x)).argmax(-1)
    y = predicted.copy()
    y[:10] = (y[:10] + 1) % 4
    assert evaluate(model, x, y, batch=16) == pytest.approx(0.8)


# ------------------------------------------------------------------ the loop, in this process
class _Context:
    def get_world_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 1


class _Sender:
    def __init__(self):
        self.messages = []

    def send(self, message):
        self.messages.append(message)


class _LocalBackend(WorkerBackend):
    """One worker, no collectives: the default strategy and an identity reducer."""

    name = "local"

    @classmethod
    def ray_config(cls):
        return None

    @property
    def strategy(self):
        return tf.distribute.get_strategy()

    def reducer(self):
        return IdentityReducer()

    def train_step(self, model, optimizer, batch_size, train):
        return MirroredTrainStep(model, optimizer, batch_size, train, self.strategy)

    def allreduce_gradients(self, grads):
        return grads


class _LocalLoop(WorkerLoop):
    """The production loop on `_LocalBackend`; records which set-up hooks ran."""

    def __init__(self, config):
        self.calls = []
        super().__init__(config)

    def make_backend(self):
        self.calls.append("make_backend")
        return _LocalBackend(self.rank, self.world)

    def make_reducer(self):
        self.calls.append("make_reducer")
        return super().make_reducer()


def _config(sender, steps=6, schedule=None):
    spec = JobSpec.model_validate({
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 4, "conv2": 8, "fc": 8}},
        "data": {"source": "synthetic"},
        "train": {"steps": steps, "batch_size": 8, "report_every": 2, "checkpoint_every": 100},
        "prune": {"sparsity": 0.5, "schedule": schedule or {"kind": "one_shot", "step": 2}},
        "scaling": {"num_workers": 1},
    })  # fmt: skip
    x, y = synthetic(96, (8, 8, 1), 3, seed=0)
    return WorkerConfig(spec=spec.model_dump(mode="json"), validation=(x[:16], y[:16]), input_shape=(8, 8, 1),
                        num_classes=3, steps_per_epoch=10, total_steps=steps, progress=sender,
                        train_arrays=(x[16:], y[16:]))  # fmt: skip


@pytest.fixture
def ray_train(monkeypatch):
    """Ray Train's worker calls, answered locally; yields the checkpoint directories reported.
    (This process's TensorFlow is already running: its thread pools can no longer be sized.)"""
    reported = []

    def report(metrics, checkpoint=None, **_):
        if checkpoint is not None:
            reported.append(Path(checkpoint.path))

    monkeypatch.setattr(ray.train, "get_context", _Context)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.train, "report", report)
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: None)
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", lambda n: None)
    yield reported
    for directory in reported:  # Ray Train's upload would have removed them
        shutil.rmtree(directory, ignore_errors=True)


def test_constructing_the_loop_talks_to_no_other_worker(ray_train):
    loop = _LocalLoop(_config(_Sender()))
    assert loop.calls == [] and not hasattr(loop, "model")
    assert loop.start() is loop and loop.calls == ["make_backend", "make_reducer"]


def test_windows_are_typed_reports_and_the_checkpointed_event_carries_its_retrace(ray_train):
    sender = _Sender()
    _LocalLoop(_config(sender)).start().run()
    kinds = [m.kind for m in sender.messages]
    assert kinds[0] == STARTED and kinds[-1] == FINISHED
    windows = [m for m in sender.messages if m.kind == WINDOW]
    assert all(isinstance(m.payload, WindowReport) for m in windows)
    assert [(w.payload.rank, w.payload.step) for w in windows] == [(0, 2), (0, 3), (0, 4), (0, 6)]
    assert all(w.payload.time == w.time and w.payload.pid == os.getpid() for w in windows)
    [event] = [w.payload.event for w in windows if w.payload.event is not None]
    assert isinstance(event, PruneEvent) and event.step == 2 and event.durations.retrace > 0
    assert windows[-1].payload.final and windows[-1].payload.weights_sha
    assert windows[-1].payload.params < windows[0].payload.params
    after_event, final = ray_train  # checkpoint_every 100: the event forces one, the end another
    for directory in (after_event, final):
        state = TrainState.from_json((directory / STATE_FILE).read_text())
        assert state.events == [event]  # recorded complete: its retrace included
    assert json.loads((final / EXPORT_FILE).read_text())["exported_params"] == windows[-1].payload.params


def test_an_auto_schedule_that_never_settles_starts_at_its_latest_step_and_checkpoints_its_state(ray_train):
    """Checks every 2 steps until the latest start (5; a window of 100 never settles), then two
    events 3 steps apart, each half of the way; the checks reach the driver with the windows."""
    sender = _Sender()
    auto = {"kind": "auto", "every": 2, "window": 100, "events": 2, "spacing": 3, "latest": 5}
    _LocalLoop(_config(sender, steps=12, schedule=auto)).start().run()
    windows = [m.payload for m in sender.messages if m.kind == WINDOW]
    checks = [c for w in windows for c in w.mask_checks]
    assert [(c.step, c.start) for c in checks] == [(0, None), (2, None), (4, None), (5, "latest")]
    assert checks[0].distance is None and all(0 <= c.distance <= 1 for c in checks[1:3])
    events = [w.event for w in windows if w.event is not None]
    assert [(e.step, e.target_sparsity) for e in events] == [(5, 0.25), (8, 0.5)]
    state = TrainState.from_json((ray_train[-1] / STATE_FILE).read_text())
    assert state.auto.started_at == 5 and state.auto.streak < 100 and state.auto.last_keep


def test_a_prune_event_record_is_complete_only_with_its_retrace():
    model = custom_models.partly_supported(input_shape=(4, 4, 1), classes=3)
    graph = build_graph(model)
    pruner = Pruner("l1")
    scored = pruner.decide(model, 0.5, graph=graph)
    result = pruner.apply(model, scored.plan, graph=graph, durations=dict(scored.durations))
    baseline = {g.id: g.size for g in graph.groups}
    event = prune_event_record(7, 0.5, sparsity_after(result.groups, baseline), scored, result, world=2,
                               baseline_sizes=baseline)  # fmt: skip
    assert event.allreduce_bytes == 2 * scored.local_scores.nbytes and event.sparsity > 0
    assert (event.target_sparsity, event.threshold) == (0.5, None)
    assert event.group_sparsity == {g["id"]: 1 - len(g["kept"]) / g["size"] for g in result.groups}
    assert [k.path for k in event.kept_whole] == ["unit_norm"] and event.durations.retrace is None
    done = with_retrace(event, 0.25)
    assert done.durations.retrace == 0.25 and event.durations.retrace is None  # a new record
    assert done.durations.surgery == event.durations.surgery > 0


def test_a_prune_event_names_the_layers_its_surgery_left_approximate():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="fc")(inputs)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.LayerNormalization(name="ln")(hidden))
    model = keras.Model(inputs, outputs)
    graph = build_graph(model)
    pruner = Pruner("l1")
    scored = pruner.decide(model, 0.5, graph=graph)
    result = pruner.apply(model, scored.plan, graph=graph, durations=dict(scored.durations))
    event = prune_event_record(1, 0.5, 0.5, scored, result, world=1, baseline_sizes={"fc": 8})
    assert event.approximate == ["ln"] and event.channels_after < event.channels_before
    assert PruneEvent.model_validate(event.model_dump()).approximate == ["ln"]  # on the wire too


class _SplitReducer(IdentityReducer):
    """As if another rank had restored a checkpoint 5 steps older (it could not read the newest)."""

    def allmin(self, values):
        return super().allmin(values) - 5


class _SplitLoop(_LocalLoop):
    def make_reducer(self):
        return _SplitReducer()


def test_ranks_that_restored_different_checkpoints_refuse_to_train(ray_train):
    from slimray.runtime.checkpoints import CheckpointDisagreementError

    expected = "restored step 0, but the ranks restored steps -5 to 0"
    with pytest.raises(CheckpointDisagreementError, match=expected):
        _SplitLoop(_config(_Sender())).start()

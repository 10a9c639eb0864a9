"""Horovod's part of a worker: `hvd.init()` checked against Ray Train's ranks, the train step
(one fused gradient average) and rank 0's weights broadcast. Loaded only in workers."""

from __future__ import annotations

import math
import os
from typing import Any

import horovod.tensorflow as hvd
import tensorflow as tf

from slimray.core.spec import TrainSpec
from slimray.runtime.backends.base import TrainStep

GLOO_TIMEOUT = "HOROVOD_GLOO_TIMEOUT_SECONDS"  # how long gloo's operations wait for peers


def init_horovod(rank: int, world: int, timeout_seconds: float | None = None) -> None:
    """Join the rendezvous Ray Train's controller started; Horovod must see Ray Train's ranks.
    Gloo's operations (every collective) give up after `timeout_seconds`."""
    if timeout_seconds is not None:
        os.environ[GLOO_TIMEOUT] = str(math.ceil(timeout_seconds))
    hvd.init()
    if (hvd.rank(), hvd.size()) != (rank, world):
        raise RuntimeError(f"horovod backend: Horovod says rank {hvd.rank()} of {hvd.size()}, "
                           f"Ray Train rank {rank} of {world}")  # fmt: skip


def average_gradients(grads: list[Any]) -> list[Any]:
    """The workers' gradients averaged in one fused `hvd.grouped_allreduce`."""
    return hvd.grouped_allreduce(list(grads), op=hvd.Average, name="slimray.gradients")


def broadcast_variables(variables: list[Any]) -> None:
    """Every worker takes rank 0's values (weights and optimizer slots)."""
    for index, variable in enumerate(variables):
        variable.assign(hvd.broadcast(tf.convert_to_tensor(variable), 0, name=f"slimray.broadcast.{index}"))


class HorovodTrainStep(TrainStep):
    """Each worker's loss is the mean over its own batch; `hvd.grouped_allreduce` averages the
    gradients (one fused call), and every worker applies the same average."""

    def __init__(self, model: Any, optimizer: Any, loss_batch: int, train: TrainSpec, world: int):
        super().__init__(model, optimizer, loss_batch, train)
        self.world = world

    def run(self, x: Any, y: Any) -> tuple[Any, Any]:
        loss, correct, grads = self.gradients(x, y)
        grads = average_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return loss / self.world, correct  # this worker's share of the global mean loss

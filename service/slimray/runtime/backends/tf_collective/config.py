"""Ray Train set-up of the tf-collective backend: TF_CONFIG for MultiWorkerMirroredStrategy on every
worker. Not `ray.train.tensorflow`, which imports TensorFlow (~6 s in driver and controller a job)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import ray
from ray._common.network_utils import build_address
from ray.train._internal.utils import get_address_and_port
from ray.train.backend import Backend, BackendConfig
from ray.train.v2._internal.util import TrainingFramework


@dataclass
class TFCollectiveConfig(BackendConfig):
    """The backend that gives every worker its place in the TF cluster (world rank = task index)."""

    @property
    def backend_cls(self):
        return _TFCollectiveBackend

    @property
    def framework(self):
        return TrainingFramework.TENSORFLOW


def _worker_address() -> str:
    """Runs in a worker: the host:port its TF server will listen on."""
    return build_address(*get_address_and_port())


def set_tf_config(worker_addresses: list[str], index: int) -> None:
    """What MultiWorkerMirroredStrategy reads to find its peers (runs in each worker)."""
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": worker_addresses}, "task": {"type": "worker", "index": index}}
    )


class _TFCollectiveBackend(Backend):
    """Runs in the Train controller for every new worker group: collects the workers' addresses,
    then gives each its TF_CONFIG."""

    def on_start(self, worker_group, backend_config: TFCollectiveConfig) -> None:
        addresses = worker_group.execute(_worker_address)
        ray.get([
            worker_group.execute_single_async(i, set_tf_config, worker_addresses=addresses, index=i)
            for i in range(len(worker_group))
        ])  # fmt: skip

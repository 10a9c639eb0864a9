"""The optional Horovod backend (0.28.1 over gloo, `make horovod`): the only module that imports
Horovod. Gradients go through `hvd.grouped_allreduce` in a custom step, never through
`horovod.tensorflow.keras`, whose optimizer silently skips averaging under Keras 3."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.train.backend import Backend, BackendConfig

from slimray.core.spec import TrainSpec
from slimray.runtime.backends.base import TrainStep, WorkerBackend

HOROVOD_VERSION = "0.28.1"


@dataclass
class HorovodConfig(BackendConfig):
    """Ray Train set-up for Horovod: a gloo rendezvous server in the Train controller and the
    `HOROVOD_*` variables in every worker before the loop calls `hvd.init()`."""

    timeout_s: int = 300  # gloo's rendezvous and first connections
    verbose: int = 0

    @property
    def backend_cls(self):
        return _HorovodRayBackend


def _contiguous_node_ranks(node_ids: list[str]) -> dict[str, list[int]]:
    """World ranks per node, in rank order. Horovod's host plan gives each node a contiguous block
    of ranks; Ray Train groups its workers by node, and this checks it (a clear error if not)."""
    ranks: dict[str, list[int]] = {}
    for rank, node in enumerate(node_ids):
        if node in ranks and ranks[node][-1] != rank - 1:
            raise RuntimeError(f"horovod backend: worker ranks are not grouped by node ({node_ids})")
        ranks.setdefault(node, []).append(rank)
    return ranks


def _rank_environment(node_ids: list[str]) -> list[dict[str, str]]:
    """Each rank's HOROVOD_RANK/SIZE/LOCAL_*/CROSS_*/HOSTNAME (the node id names the host)."""
    per_node = _contiguous_node_ranks(node_ids)
    cross_size: dict[int, int] = {}
    for ranks in per_node.values():
        for local in range(len(ranks)):
            cross_size[local] = cross_size.get(local, 0) + 1
    env: list[dict[str, str]] = [{} for _ in node_ids]
    for cross_rank, (node, ranks) in enumerate(per_node.items()):
        for local, rank in enumerate(ranks):
            env[rank] = {"HOROVOD_RANK": str(rank), "HOROVOD_SIZE": str(len(node_ids)),
                         "HOROVOD_LOCAL_RANK": str(local), "HOROVOD_LOCAL_SIZE": str(len(ranks)),
                         "HOROVOD_CROSS_RANK": str(cross_rank), "HOROVOD_CROSS_SIZE": str(cross_size[local]),
                         "HOROVOD_HOSTNAME": node}  # fmt: skip
    return env


def _set_worker_environment(env: dict[str, str]) -> None:
    """Runs in a worker: its Horovod variables, and gloo's interface (the one holding this node's
    Ray address, so several nodes on one machine or a pod's eth0 both work)."""
    import psutil
    import ray

    ip = ray.util.get_node_ip_address()
    addresses = psutil.net_if_addrs().items()
    iface = next((name for name, addrs in addresses for a in addrs if a.address == ip), None)
    if iface:
        env = {**env, "HOROVOD_GLOO_IFACE": iface}
    os.environ.update(env)


class _HorovodRayBackend(Backend):
    """Runs in the Train controller, again for every new worker group (a restart after a failure
    gets a new rendezvous)."""

    def __init__(self) -> None:
        self.rendezvous = None

    def on_start(self, worker_group, backend_config: HorovodConfig) -> None:
        import ray
        from horovod.runner.common.util import hosts
        from horovod.runner.http.http_server import RendezvousServer

        self._stop_rendezvous()
        node_ids = [w.metadata.node_id for w in worker_group.get_workers()]
        env = _rank_environment(node_ids)
        plan = hosts.get_host_assignments(
            hosts.parse_hosts(",".join(f"{n}:{len(r)}" for n, r in _contiguous_node_ranks(node_ids).items())),
            len(node_ids),
        )
        self.rendezvous = RendezvousServer(backend_config.verbose)
        port = self.rendezvous.start()
        self.rendezvous.init(plan)
        shared = {"HOROVOD_GLOO_RENDEZVOUS_ADDR": ray.util.get_node_ip_address(),
                  "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port), "HOROVOD_CONTROLLER": "gloo",
                  "HOROVOD_CPU_OPERATIONS": "gloo",
                  "HOROVOD_GLOO_TIMEOUT_SECONDS": str(backend_config.timeout_s)}  # fmt: skip
        ray.get([worker_group.execute_single_async(rank, _set_worker_environment, {**shared, **env[rank]})
                 for rank in range(len(node_ids))])  # fmt: skip

    def on_shutdown(self, worker_group, backend_config: HorovodConfig) -> None:
        self._stop_rendezvous()

    def _stop_rendezvous(self) -> None:
        if self.rendezvous is not None:
            self.rendezvous.stop()
            self.rendezvous = None


class HorovodReducer:
    """The pruning `Reducer` over Horovod: float64 sums, mins and maxes, in call order."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.bytes_reduced = 0

    def _reduce(self, values: np.ndarray, op_name: str) -> np.ndarray:
        import horovod.tensorflow as hvd
        import tensorflow as tf

        values = np.ascontiguousarray(values, dtype=np.float64)
        self.bytes_reduced += values.nbytes
        if self.world_size == 1 or values.size == 0:
            return values.copy()
        op = {"sum": hvd.Sum, "min": hvd.Min, "max": hvd.Max}[op_name]
        return hvd.allreduce(tf.constant(values), op=op, name=f"slimray.reduce.{op_name}").numpy()

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "sum")

    def allmin(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "min")

    def allmax(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "max")


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


def average_gradients(grads: list[Any]) -> list[Any]:
    import horovod.tensorflow as hvd

    return hvd.grouped_allreduce(list(grads), op=hvd.Average, name="slimray.gradients")


class HorovodBackend(WorkerBackend):
    """Horovod over gloo under the same Ray Train controller; TensorFlow runs undistributed in
    each worker (its default strategy), so nothing is reduced twice."""

    name = "horovod"

    @classmethod
    def ray_config(cls) -> Any:
        return HorovodConfig()

    @classmethod
    def missing(cls) -> str | None:
        try:
            import horovod
            import horovod.tensorflow
        except Exception as err:  # ImportError, or the op library failing to load
            return (f"horovod {HOROVOD_VERSION} with TensorFlow is not installed ({type(err).__name__}: "
                    f"{err}); build and install it with `make horovod`")  # fmt: skip
        if horovod.__version__ != HOROVOD_VERSION:
            return f"horovod {horovod.__version__} is installed; slimray supports {HOROVOD_VERSION}"
        return None

    def __init__(self, rank: int, world: int):
        import tensorflow as tf

        super().__init__(rank, world)
        problem = self.missing()
        if problem:
            raise RuntimeError(f"backend 'horovod': {problem}")
        import horovod.tensorflow as hvd

        hvd.init()
        if (hvd.rank(), hvd.size()) != (rank, world):
            raise RuntimeError(f"horovod backend: Horovod says rank {hvd.rank()} of {hvd.size()}, "
                               f"Ray Train rank {rank} of {world}")  # fmt: skip
        self._strategy = tf.distribute.get_strategy()

    @property
    def strategy(self) -> Any:
        return self._strategy

    def reducer(self) -> HorovodReducer:
        return HorovodReducer(self.world)

    def train_step(self, model: Any, optimizer: Any, batch_size: int, train: TrainSpec) -> TrainStep:
        return HorovodTrainStep(model, optimizer, batch_size, train, self.world)

    def allreduce_gradients(self, grads: list[Any]) -> list[Any]:
        return average_gradients(grads)

    def broadcast_weights(self, model: Any, optimizer: Any) -> None:
        import horovod.tensorflow as hvd
        import tensorflow as tf

        for index, variable in enumerate([*model.variables, *optimizer.variables]):
            value = hvd.broadcast(tf.convert_to_tensor(variable), 0, name=f"slimray.broadcast.{index}")
            variable.assign(value)

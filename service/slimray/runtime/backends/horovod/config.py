"""Ray Train set-up of the Horovod backend: a gloo rendezvous server in the Train controller and
every worker's `HOROVOD_*` variables, set before the worker loop calls `hvd.init()`."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil
import ray
from ray.train.backend import Backend, BackendConfig


@dataclass
class HorovodConfig(BackendConfig):
    """What Ray Train builds `_HorovodRayBackend` from (the job's `backend: horovod`)."""

    timeout_s: int = 300  # gloo's rendezvous and first connections
    verbose: int = 0

    @property
    def backend_cls(self):
        return _HorovodRayBackend


def contiguous_node_ranks(node_ids: list[str]) -> dict[str, list[int]]:
    """World ranks per node, in rank order. Horovod's host plan gives each node a contiguous block
    of ranks; Ray Train groups its workers by node, and this checks it (a clear error if not)."""
    ranks: dict[str, list[int]] = {}
    for rank, node in enumerate(node_ids):
        if node in ranks and ranks[node][-1] != rank - 1:
            raise RuntimeError(f"horovod backend: worker ranks are not grouped by node ({node_ids})")
        ranks.setdefault(node, []).append(rank)
    return ranks


def rank_environment(node_ids: list[str]) -> list[dict[str, str]]:
    """Each rank's HOROVOD_RANK/SIZE/LOCAL_*/CROSS_*/HOSTNAME (the node id names the host)."""
    per_node = contiguous_node_ranks(node_ids)
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
        # Horovod is optional (`make horovod`): only a horovod job's controller imports it
        from horovod.runner.common.util import hosts
        from horovod.runner.http.http_server import RendezvousServer  # (the same reason)

        self._stop_rendezvous()
        node_ids = [w.metadata.node_id for w in worker_group.get_workers()]
        env = rank_environment(node_ids)
        plan = hosts.get_host_assignments(
            hosts.parse_hosts(",".join(f"{n}:{len(r)}" for n, r in contiguous_node_ranks(node_ids).items())),
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

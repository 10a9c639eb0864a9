"""Warm workers: on a cluster started for them (`slimray up`, `slimray serve --local`, the chart's
RayCluster) every Ray worker process imports TensorFlow and Keras as it starts
(`preload.PRELOADED`), and keeper actors (one on the head, one per other node it uses) prestart,
between jobs, the idle processes the next job's actors will be given, where they will ask.

Ray gives an idle process to an actor only if its runtime environment is the same string, and an
actor's process ends with it: so a warm process has run nothing before its actor, and the only
thing one job leaves the next is imported modules (isolation by construction, not by cleanup)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray._private import ray_constants
from ray._private.grpc_utils import init_grpc_channel  # a channel with Ray's token interceptor
from ray.core.generated import common_pb2, node_manager_pb2, runtime_environment_pb2
from ray.core.generated.node_manager_pb2_grpc import NodeManagerServiceStub
from ray.train.v2._internal.constants import (
    DEFAULT_ENABLE_PREEMPTION_WATCHER,
    DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE,
    ENABLE_PREEMPTION_WATCHER_ENV_VAR,
    RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
    get_env_vars_to_propagate,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from slimray.core.scaling import MAX_WORKERS
from slimray.core.spec import JobSpec

logger = logging.getLogger(__name__)
KEEPER_NAME, KEEPER_NAMESPACE = "slimray-warm-keeper", "slimray"
NODE_KEEPER_PREFIX = "slimray-warm-node-"  # + the node id: a NodeKeeper on every other node
# Ray Train V2's own actors per job, beside its workers: the controller, the placement-group
# cleaner and the synchronization actor (+ the preemption watcher when it is on); a Ray Data set
# adds Train's DatasetManager and Ray Data's split coordinator. slimray's progress channel runs
# in the driver's env. Counted in the raylet's log of a job on a session (8 actors, 2 workers)
TRAIN_SIDE_ACTORS = 3
DATASET_ACTORS = 2
KEEP_ALIVE_S = 3600  # an idle warm process is kept this long (then Ray's idle limit applies)
REGISTER_TIMEOUT_S = 180.0  # a batch of prestarted processes must register within this
NODE_REFILL_TIMEOUT_S = 1800.0  # a node's whole refill (its batches, one after another)
QUIET_WINDOW_S, QUIET_CPU_S = 0.5, 0.05  # a process done importing uses < 10% of a CPU
NODES_WAIT_S = 120.0  # a cluster's warm job waits this long for a node with CPUs
POOL_SETS = 2  # at most this many jobs' worth of idle processes (a refill on top of more: none)


@dataclass(frozen=True)
class WarmEnv:
    """`count` idle processes for one runtime environment, as Ray serializes it (an idle process
    fits an actor only if the strings are equal)."""

    serialized: str
    count: int


@dataclass(frozen=True)
class JobProcesses:
    """The processes one job's actors take: Ray Train's side actors (0 CPUs, on the driver's node,
    in the train env), the progress channel (the driver's env, there too), one per worker."""

    train_env: str
    driver_env: str
    side: int
    workers: int
    cpus_per_worker: float = 1.0

    def on_nodes(self, driver_node: str, cpus: dict[str, int]) -> dict[str, tuple[WarmEnv, ...]]:
        """Where they start, by node id: the side processes on `driver_node`; the workers packed
        onto the nodes with CPUs (`cpus`: node id -> CPUs), the largest first, as many as fit."""
        side = Counter({self.train_env: self.side, self.driver_env: 1})
        counts: dict[str, Counter[str]] = {driver_node: side}
        left = self.workers
        for node, n in sorted(cpus.items(), key=lambda item: (-item[1], item[0])):
            take = min(int(n // self.cpus_per_worker), left)
            if take > 0:
                counts.setdefault(node, Counter())[self.train_env] += take
                left -= take
        return {node: tuple(WarmEnv(env, n) for env, n in c.items() if n > 0) for node, c in counts.items()}


@dataclass(frozen=True)
class PoolState:
    """A settled keeper's account: refills it has done, processes it started on its own node, and
    the idle processes ready for any job now on every node with a keeper."""

    refills: int
    started: int
    idle: int


def _watcher_on() -> bool:
    """Whether Ray Train will start its preemption watcher (read as its controller reads it)."""
    return ray_constants.env_bool(ENABLE_PREEMPTION_WATCHER_ENV_VAR, DEFAULT_ENABLE_PREEMPTION_WATCHER)


def job_processes(job_env_vars: dict[str, str], workers: int, uses_dataset: bool,
                  cpus_per_worker: float = 1.0) -> JobProcesses:  # fmt: skip
    """The processes a job's actors take, by runtime environment. Call it where the trainer is
    built (inside `controller_env`): Ray Train propagates the driver's RAY_TRAIN_* variables.

    The job's own env (`ray.init(runtime_env=...)`) is serialized by Python's json; Ray's core
    worker merges it into Ray Train's actors' env and writes that compact, keys sorted."""
    train_vars = {**job_env_vars, **get_env_vars_to_propagate()}
    train_vars.setdefault(RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
                          DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE)  # fmt: skip
    train = json.dumps({"env_vars": train_vars}, sort_keys=True, separators=(",", ":"))
    side = TRAIN_SIDE_ACTORS + DATASET_ACTORS * int(uses_dataset) + int(_watcher_on())
    return JobProcesses(train, json.dumps({"env_vars": job_env_vars}), side, workers, cpus_per_worker)


def cpu_nodes() -> dict[str, int]:
    """The alive nodes that have CPUs (where workers go), by node id: their CPUs."""
    return {n["NodeID"]: int(n["Resources"]["CPU"]) for n in ray.nodes()
            if n["Alive"] and n["Resources"].get("CPU", 0) >= 1}  # fmt: skip


class NodeKeeper:
    """A detached actor per node: prestarts idle worker processes on its node, in batches the
    raylet accepts (it drops requests beyond its start-up concurrency, one per CPU)."""

    def __init__(self, keep_alive_s: int = KEEP_ALIVE_S):
        self.keep_alive_s = keep_alive_s
        self._lock = threading.Lock()
        self._mine: dict[str, set[int]] = {}  # by serialized env: idle processes this keeper started
        self.refills = 0
        self.started = 0

    def _stub(self) -> tuple[Any, int]:
        """A channel to this node's raylet, and how many processes it starts at once (one per
        CPU, at least one: a head without CPUs starts them one at a time)."""
        node_id = ray.get_runtime_context().get_node_id()
        node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
        cpus = int(node["Resources"].get("CPU", 1))
        channel = init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")
        return NodeManagerServiceStub(channel), max(1, min(os.cpu_count() or 1, cpus))

    @staticmethod
    def _worker_pids(stub: Any, idle_only: bool) -> set[int]:
        """Registered Python worker processes; `idle_only`: those holding no actor and no job,
        ready for any job."""
        reply = stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(), timeout=30)
        return {w.pid for w in reply.core_workers_stats if w.worker_type == common_pb2.WORKER
                and (not idle_only or (_nil(w.actor_id) and _nil(w.job_id)))}  # fmt: skip

    def idle_pids(self) -> list[int]:
        """The idle worker processes on this node now (any env), for `settled` and tests."""
        return sorted(self._worker_pids(self._stub()[0], idle_only=True))

    def idle(self) -> int:
        """How many worker processes on this node are idle now."""
        return len(self.idle_pids())

    @staticmethod
    def _wait_quiet(pids: Iterable[int], deadline: float) -> None:
        """A process registers before it imports `PRELOADED`: wait until each has stopped using
        CPU (the import done), so a job that follows is given processes that are ready."""
        import psutil  # lazy: only the keepers' processes need it

        def cpu(pid: int) -> float:
            try:
                times = psutil.Process(pid).cpu_times()
                return times.user + times.system
            except psutil.Error:  # gone: nothing to wait for
                return -1.0

        busy = set(pids)
        while busy and time.time() < deadline:
            before = {pid: cpu(pid) for pid in busy}
            time.sleep(QUIET_WINDOW_S)
            busy = {pid for pid in busy if before[pid] >= 0 and cpu(pid) - before[pid] > QUIET_CPU_S}

    def _prestart(self, stub: Any, serialized: str, n: int) -> set[int]:
        """Ask the raylet for `n` processes of env `serialized`; wait until that many new ones have
        registered (idle or already taken by a job); returns the new pids."""
        before = self._worker_pids(stub, idle_only=False)
        info = runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env=serialized)
        stub.PrestartWorkers(node_manager_pb2.PrestartWorkersRequest(
            language=common_pb2.PYTHON, runtime_env_info=info, num_workers=n,
            keep_alive_duration_secs=self.keep_alive_s), timeout=30)  # fmt: skip
        deadline = time.time() + REGISTER_TIMEOUT_S
        while len(new := self._worker_pids(stub, idle_only=False) - before) < n and time.time() < deadline:
            time.sleep(0.5)
        return new

    def _top_up(self, stub: Any, batch: int, env: WarmEnv) -> set[int]:
        """Prestart `env.count` processes of `env`, unless `POOL_SETS` sets of those this keeper
        started are idle still: jobs that never take them (other settings, failures) must not pile
        up processes of ~0.7 GB each until their keep-alive. Returns the new pids."""
        mine = self._mine.get(env.serialized, set()) & self._worker_pids(stub, idle_only=True)
        new: set[int] = set()
        if len(mine) < POOL_SETS * env.count:
            for start in range(0, env.count, batch):
                new |= self._prestart(stub, env.serialized, min(batch, env.count - start))
        self._mine[env.serialized] = mine | new
        return new

    def refill(self, envs: Iterable[WarmEnv]) -> int:
        """Prestart `count` idle processes per serialized runtime env (`_top_up`), then wait until
        they have imported what they preload; returns how many started."""
        with self._lock:
            stub, batch = self._stub()
            new = set().union(*(self._top_up(stub, batch, env) for env in envs))
            self._wait_quiet(new, time.time() + REGISTER_TIMEOUT_S)
            self.refills, self.started = self.refills + 1, self.started + len(new)
            return len(new)


class WarmKeeper(NodeKeeper):
    """The cluster's keeper, detached on the head: its node's `NodeKeeper`, and the one that
    places a job's processes on the nodes and has each node's keeper start its part."""

    def __init__(self, keep_alive_s: int = KEEP_ALIVE_S):
        super().__init__(keep_alive_s)
        self.here = ray.get_runtime_context().get_node_id()
        self.pending = 0  # refills asked for and not yet done
        self._counting = threading.Lock()

    def _count(self, delta: int) -> None:
        with self._counting:
            self.pending += delta

    def _keeper_of(self, node_id: str) -> Any:
        if node_id == self.here:
            return self
        return _start_actor(NodeKeeper, _node_keeper_name(node_id), node_id, self.keep_alive_s)

    def refill_job(self, job: JobProcesses, driver_node: str) -> int:
        """Prestart `job`'s processes where its actors will start (`JobProcesses.on_nodes`), each
        node's part by its own keeper; returns how many were asked for."""
        self._count(+1)
        return self._refill_job(job, driver_node)

    def _refill_job(self, job: JobProcesses, driver_node: str) -> int:
        try:
            parts = job.on_nodes(driver_node, cpu_nodes())
            remote = {node: self._keeper_of(node).refill.remote(list(envs)) for node, envs in parts.items()
                      if node != self.here}  # fmt: skip
            here = self.refill(parts.get(self.here, ()))
            return here + sum(_started_on(node, ref) for node, ref in remote.items())
        finally:
            self._count(-1)

    def refill_later(self, job: JobProcesses, driver_node: str) -> None:
        """`refill_job` in a thread of its own: the driver that asks may end right after."""
        self._count(+1)

        def work() -> None:
            try:
                self._refill_job(job, driver_node)
            except Exception:  # the next job starts cold; the keeper's log says why
                logger.exception("the refill for %s failed", driver_node)

        threading.Thread(target=work, daemon=True).start()

    def idle_by_node(self) -> dict[str, int]:
        """The idle worker processes now, by node id, on every alive node with a keeper."""
        others = {node: self._keeper_of(node).idle.remote() for node in _nodes_with_keepers()
                  if node != self.here}  # fmt: skip
        return {self.here: self.idle(), **{node: ray.get(ref) for node, ref in others.items()}}

    def settled(self, timeout_s: float = 600.0) -> PoolState:
        """Once no refill is pending (or after `timeout_s`): the pool's state (`PoolState`)."""
        deadline = time.time() + timeout_s
        while self.pending and time.time() < deadline:
            time.sleep(0.5)
        return PoolState(self.refills, self.started, sum(self.idle_by_node().values()))


def _started_on(node: str, ref: Any) -> int:
    """What a node's keeper started; 0 if it failed (a node lost meanwhile): the others count."""
    try:
        return ray.get(ref, timeout=NODE_REFILL_TIMEOUT_S)
    except Exception as err:  # the node's next job starts cold; the others stay warm
        logger.warning("the keeper of node %s did not refill: %s: %s", node, type(err).__name__, err)
        return 0


def _nil(ray_id: bytes) -> bool:
    """Ray's nil ids are all 0xff bytes."""
    return not ray_id or set(ray_id) <= {0xFF}


def _node_keeper_name(node_id: str) -> str:
    return f"{NODE_KEEPER_PREFIX}{node_id}"


def _nodes_with_keepers() -> list[str]:
    """The alive nodes whose `NodeKeeper` has been started."""
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    named = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == KEEPER_NAMESPACE
    ]
    nodes = [name.removeprefix(NODE_KEEPER_PREFIX) for name in named if name.startswith(NODE_KEEPER_PREFIX)]
    return [node for node in nodes if node in alive]


def _start_actor(cls: type, name: str, node_id: str, keep_alive_s: int) -> Any:
    """The keeper `cls` named `name`, detached on `node_id`: the one there if it has one."""
    options = {"num_cpus": 0, "max_concurrency": 4, "lifetime": "detached", "name": name, "max_restarts": -1,
               "namespace": KEEPER_NAMESPACE, "get_if_exists": True,
               "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}  # fmt: skip
    return ray.remote(**options)(cls).remote(keep_alive_s)


def start_keeper(keep_alive_s: int = KEEP_ALIVE_S) -> Any:
    """The cluster's keeper, created detached on this node (the head) if it has none."""
    return _start_actor(WarmKeeper, KEEPER_NAME, ray.get_runtime_context().get_node_id(), keep_alive_s)


def find_keeper() -> Any | None:
    """The keeper of the cluster this driver joined, None on a cold cluster."""
    try:
        return ray.get_actor(KEEPER_NAME, namespace=KEEPER_NAMESPACE)
    except ValueError:
        return None


def request_refill(keeper: Any, job: JobProcesses, timeout: float = 30.0) -> None:
    """Ask the keeper to prestart `job`'s processes for the next job (the side ones on this
    driver's node); it works on after this driver ends."""
    ray.get(keeper.refill_later.remote(job, ray.get_runtime_context().get_node_id()), timeout=timeout)


def keep_warm(spec: JobSpec) -> int:
    """On the cluster this driver joined: start the keeper and prestart the processes a job like
    `spec` takes (its data as a Ray Data set; the side ones on this node); returns how many it
    asked for."""
    from slimray.runtime.cluster import (  # lazy: cluster imports Ray Train's trainer
        JOB_ENV_VARS,
        controller_env,
    )

    keeper = start_keeper()
    with controller_env(spec):
        job = job_processes(dict(JOB_ENV_VARS), spec.scaling.max_workers, True, spec.scaling.cpus_per_worker)
    return ray.get(keeper.refill_job.remote(job, ray.get_runtime_context().get_node_id()))


def default_job(workers: int) -> JobSpec:
    """The job a warm cluster prepares for when given none: the spec's defaults at `workers`."""
    return JobSpec.model_validate({"name": "warm", "model": {"source": "mlp"}, "data": {"source": "mnist"},
                                   "train": {"steps": 1}, "scaling": {"num_workers": workers},
                                   "output": {"dir": "never-written"}})  # fmt: skip


def cluster_workers(wait_s: float) -> int:
    """How many workers the cluster can run at once (its CPUs on nodes with CPUs), once a node
    with CPUs has joined or `wait_s` has passed (a cluster's worker pods join after its head)."""
    deadline = time.time() + wait_s
    while not (nodes := cpu_nodes()) and time.time() < deadline:
        time.sleep(1.0)
    return max(1, min(MAX_WORKERS, sum(nodes.values())))


def main(argv: list[str] | None = None) -> int:
    """`python -m slimray.runtime.warm [ADDRESS] [--workers N]`: keep the cluster at ADDRESS (else
    RAY_ADDRESS: a Ray job's own) warm for jobs of N workers, by default as many as it has CPUs.
    `slimray serve` submits it as a Ray job; Ray's token comes from the environment."""
    import argparse  # lazy: only this entry point parses

    parser = argparse.ArgumentParser(prog="python -m slimray.runtime.warm")
    parser.add_argument("address", nargs="?", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--wait-nodes", type=float, default=NODES_WAIT_S)
    args = parser.parse_args(argv)
    ray.init(address=args.address, log_to_driver=False)
    try:
        workers = args.workers or cluster_workers(args.wait_nodes)
        print(f"{keep_warm(default_job(workers))} warm worker processes for jobs of {workers} workers")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

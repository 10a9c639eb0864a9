"""Warm workers: on a cluster started for them (`slimray up`, `slimray serve --local`) every Ray
worker process imports TensorFlow and Keras as it starts (`preload.PRELOADED`), and a
keeper actor prestarts, between jobs, the idle processes the next job's actors will be given.

Ray gives an idle process to an actor only if its runtime environment is the same string, and an
actor's process ends with it: so a warm process has run nothing before its actor, and the only
thing one job leaves the next is imported modules (isolation by construction, not by cleanup)."""

from __future__ import annotations

import json
import os
import threading
import time
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

from slimray.core.spec import JobSpec

KEEPER_NAME, KEEPER_NAMESPACE = "slimray-warm-keeper", "slimray"
# Ray Train V2's own actors per job, beside its workers: the controller, the placement-group
# cleaner and the synchronization actor (+ the preemption watcher when it is on); a Ray Data set
# adds Train's DatasetManager and Ray Data's split coordinator. slimray's progress channel runs
# in the driver's env. Counted in the raylet's log of a job on a session (8 actors, 2 workers)
TRAIN_SIDE_ACTORS = 3
DATASET_ACTORS = 2
KEEP_ALIVE_S = 3600  # an idle warm process is kept this long (then Ray's idle limit applies)
REGISTER_TIMEOUT_S = 180.0  # a batch of prestarted processes must register within this
QUIET_WINDOW_S, QUIET_CPU_S = 0.5, 0.05  # a process done importing uses < 10% of a CPU
POOL_SETS = 2  # at most this many jobs' worth of idle processes (a refill on top of more: none)


@dataclass(frozen=True)
class WarmEnv:
    """`count` idle processes for one runtime environment, as Ray serializes it (an idle process
    fits an actor only if the strings are equal)."""

    serialized: str
    count: int


def _watcher_on() -> bool:
    """Whether Ray Train will start its preemption watcher (read as its controller reads it)."""
    return ray_constants.env_bool(ENABLE_PREEMPTION_WATCHER_ENV_VAR, DEFAULT_ENABLE_PREEMPTION_WATCHER)


def job_envs(job_env_vars: dict[str, str], workers: int, uses_dataset: bool) -> tuple[WarmEnv, ...]:
    """The processes a job's actors take, by runtime environment. Call it where the trainer is
    built (inside `controller_env`): Ray Train propagates the driver's RAY_TRAIN_* variables.

    The job's own env (`ray.init(runtime_env=...)`) is serialized by Python's json; Ray's core
    worker merges it into Ray Train's actors' env and writes that compact, keys sorted."""
    train_vars = {**job_env_vars, **get_env_vars_to_propagate()}
    train_vars.setdefault(RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
                          DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE)  # fmt: skip
    train = json.dumps({"env_vars": train_vars}, sort_keys=True, separators=(",", ":"))
    side = TRAIN_SIDE_ACTORS + DATASET_ACTORS * int(uses_dataset) + int(_watcher_on())
    return WarmEnv(train, side + workers), WarmEnv(json.dumps({"env_vars": job_env_vars}), 1)


class WarmKeeper:
    """A detached actor on the head: prestarts idle worker processes on its node, in batches the
    raylet accepts (it drops requests beyond its start-up concurrency, one per CPU)."""

    def __init__(self, keep_alive_s: int = KEEP_ALIVE_S):
        self.keep_alive_s = keep_alive_s
        self._lock = threading.Lock()
        self.refills = 0
        self.started = 0
        self.pending = 0  # refills asked for and not yet done

    def _stub(self) -> tuple[Any, int]:
        node_id = ray.get_runtime_context().get_node_id()
        node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
        cpus = int(node["Resources"].get("CPU", 1))
        channel = init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")
        return NodeManagerServiceStub(channel), max(1, min(os.cpu_count() or 1, cpus))

    @staticmethod
    def _idle_pids(stub: Any) -> list[int]:
        """Registered worker processes that hold no actor and no job: ready for any job."""
        reply = stub.GetNodeStats(node_manager_pb2.GetNodeStatsRequest(), timeout=30)
        return [w.pid for w in reply.core_workers_stats
                if w.worker_type == common_pb2.WORKER and _nil(w.actor_id) and _nil(w.job_id)]  # fmt: skip

    def _idle(self, stub: Any) -> int:
        return len(self._idle_pids(stub))

    @staticmethod
    def _wait_quiet(pids: list[int], deadline: float) -> None:
        """A process registers before it imports `PRELOADED`: wait until each has stopped using
        CPU (the import done), so a job that follows is given processes that are ready."""
        import psutil  # lazy: only the keeper's process needs it

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

    def refill(self, envs: Iterable[tuple[str, int]]) -> int:
        """Prestart `count` idle processes per serialized runtime env; returns how many it asked for.
        Nothing while `POOL_SETS` such sets are idle already: jobs that never take them (other
        settings, failures) must not pile up processes of ~0.7 GB each until their keep-alive."""
        envs = list(envs)
        with self._lock:
            stub, batch = self._stub()
            if self._idle(stub) >= POOL_SETS * sum(count for _, count in envs):
                return 0
            started = 0
            for serialized, count in envs:
                left = count
                while left > 0:
                    n = min(batch, left)
                    before = self._idle(stub)
                    info = runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env=serialized)
                    stub.PrestartWorkers(node_manager_pb2.PrestartWorkersRequest(
                        language=common_pb2.PYTHON, runtime_env_info=info, num_workers=n,
                        keep_alive_duration_secs=self.keep_alive_s), timeout=30)  # fmt: skip
                    deadline = time.time() + REGISTER_TIMEOUT_S
                    while self._idle(stub) < before + n and time.time() < deadline:
                        time.sleep(0.5)
                    started, left = started + n, left - n
            self._wait_quiet(self._idle_pids(stub), time.time() + REGISTER_TIMEOUT_S)
            self.refills, self.started = self.refills + 1, self.started + started
            return started

    def refill_later(self, envs: list[tuple[str, int]]) -> None:
        """`refill` in a thread of its own: the driver that asks may end right after."""
        self.pending += 1

        def work() -> None:
            try:
                self.refill(envs)
            finally:
                self.pending -= 1

        threading.Thread(target=work, daemon=True).start()

    def settled(self, timeout_s: float = 600.0) -> dict[str, int]:
        """Once no refill is pending (or after `timeout_s`): refills done, processes prestarted,
        and the idle processes ready for any job now."""
        deadline = time.time() + timeout_s
        while self.pending and time.time() < deadline:
            time.sleep(0.5)
        return {"refills": self.refills, "started": self.started, "idle": self._idle(self._stub()[0])}


def _nil(ray_id: bytes) -> bool:
    """Ray's nil ids are all 0xff bytes."""
    return not ray_id or set(ray_id) <= {0xFF}


def start_keeper(keep_alive_s: int = KEEP_ALIVE_S) -> Any:
    """The cluster's keeper, created detached on this node (the head) if it has none."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    options = {"num_cpus": 0, "max_concurrency": 4, "lifetime": "detached", "name": KEEPER_NAME,
               "namespace": KEEPER_NAMESPACE, "get_if_exists": True, "scheduling_strategy": here}  # fmt: skip
    return ray.remote(**options)(WarmKeeper).remote(keep_alive_s)


def find_keeper() -> Any | None:
    """The keeper of the cluster this driver joined, None on a cold cluster."""
    try:
        return ray.get_actor(KEEPER_NAME, namespace=KEEPER_NAMESPACE)
    except ValueError:
        return None


def request_refill(keeper: Any, envs: tuple[WarmEnv, ...], timeout: float = 30.0) -> None:
    """Ask the keeper to prestart `envs` for the next job; it works on after this driver ends."""
    ray.get(keeper.refill_later.remote([(e.serialized, e.count) for e in envs]), timeout=timeout)


def keep_warm(spec: JobSpec) -> int:
    """On the cluster this driver joined: start the keeper and prestart the processes a job like
    `spec` takes (its data as a Ray Data set); returns how many it asked for."""
    from slimray.runtime.cluster import (  # lazy: cluster imports Ray Train's trainer
        JOB_ENV_VARS,
        controller_env,
    )

    keeper = start_keeper()
    with controller_env(spec):
        envs = job_envs(dict(JOB_ENV_VARS), spec.scaling.max_workers, True)
    return ray.get(keeper.refill.remote([(e.serialized, e.count) for e in envs]))


def default_job(workers: int) -> JobSpec:
    """The job a warm cluster prepares for when given none: the spec's defaults at `workers`."""
    return JobSpec.model_validate({"name": "warm", "model": {"source": "mlp"}, "data": {"source": "mnist"},
                                   "train": {"steps": 1}, "scaling": {"num_workers": workers},
                                   "output": {"dir": "never-written"}})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`python -m slimray.runtime.warm ADDRESS [--workers N]`: keep the cluster at ADDRESS warm
    (`slimray serve --local` runs it beside its head; Ray's token comes from the environment)."""
    import argparse  # lazy: only this entry point parses

    parser = argparse.ArgumentParser(prog="python -m slimray.runtime.warm")
    parser.add_argument("address")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    ray.init(address=args.address, log_to_driver=False)
    try:
        print(f"{keep_warm(default_job(args.workers))} warm worker processes")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

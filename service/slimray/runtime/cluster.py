"""The driver's Ray side: join (or start) Ray, check the cluster can run the job, and build the
Ray Train V2 trainer whose controller forwards worker exceptions to the progress channel."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, UserCallback
from ray.train.v2._internal.constants import (
    COLLECTIVE_TIMEOUT_S_ENV_VAR,
    ENABLE_PREEMPTION_WATCHER_ENV_VAR,
    WORKER_HEALTH_CHECK_TIMEOUT_S_ENV_VAR,
)

from slimray.core.envvars import QUIET_TF, RAY_ADDRESS, RAY_TRAIN_POLL_INTERVAL, RAY_TRAIN_START_TIMEOUT
from slimray.core.errors import BackendUnavailableError, OutputLocationError
from slimray.core.spec import BUILT_IN_BACKENDS, JobSpec
from slimray.core.storage import RunStore
from slimray.runtime.backends import backend_missing, get_backend
from slimray.runtime.elastic import ray_scaling, scaling_policy
from slimray.runtime.embedded_ray import start_embedded_ray
from slimray.runtime.failures import RestartPolicy, SlimrayTrainer
from slimray.runtime.progress import ERROR, ProgressSender, WorkerMessage
from slimray.runtime.worker_config import WorkerConfig, train_loop_per_worker

# how often the Train controller polls its workers: it drains each worker's one-slot result
# queue (a checkpoint report waits for it) and notices the loop's end. Ray's default is 2 s.
# Measured on a 20-step MNIST job, 2 s and 0.5 s alternating twice: the shutdown phase took
# 3.7 and 3.1 s at 2 s, 1.2 and 1.5 s at 0.5 s.
HEALTH_CHECK_INTERVAL_S = 0.5
# the job-level runtime env of a driver slimray starts Ray for or joins by address
JOB_ENV_VARS = QUIET_TF


def init_ray(address: str | None, spec: JobSpec) -> bool:
    """Join `address`, or start an embedded Ray sized for the job. True if this call started it.

    Embedded means a new cluster (`address="local"`): never whatever cluster Ray's
    `ray_current_cluster` file names, which may be someone else's or long dead."""
    if ray.is_initialized():
        return False
    env = {"env_vars": dict(JOB_ENV_VARS)}
    if os.environ.get(RAY_ADDRESS) and not address:  # a Ray job's driver: its env is set
        ray.init(log_to_driver=False)
    elif address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        needed = spec.scaling.max_workers * spec.scaling.cpus_per_worker
        # Ray Data and the Train controller need a little CPU beside the training workers
        cpus = max(os.cpu_count() or 1, int(needed) + 2)
        start_embedded_ray(num_cpus=cpus, include_dashboard=False, runtime_env=env, log_to_driver=False)
    return True


def check_shared_output(spec: JobSpec) -> None:
    """The job's output must serve every alive node of the cluster it joined."""
    problem = spec.output.cluster_problem(len([n for n in ray.nodes() if n.get("Alive")]))
    if problem:
        raise OutputLocationError(problem)


def check_backend(spec: JobSpec) -> None:
    """A job's backend must run on the cluster: a tiny Ray task asks a node (before anything of the
    old run is removed). BackendUnavailableError names the field and the remedy."""
    if spec.backend in BUILT_IN_BACKENDS:
        return
    problem = ray.get(ray.remote(num_cpus=0)(backend_missing).remote(spec.backend))
    if problem:
        raise BackendUnavailableError(spec.backend, problem)


@contextlib.contextmanager
def controller_env(spec: JobSpec, embedded: bool = False) -> Iterator[None]:
    """Ray Train reads its controller settings from the driver's environment (and passes them
    to the controller): the worker-group start timeout (with `controller_failure_limit=0` a
    group that cannot be placed in time fails the job with Ray's reason instead of waiting
    forever), the hang limits (a worker whose process stops answering for
    `failure.collective_timeout_seconds` fails the group, named; Ray Train's own report barrier
    waits as long as the workers' collectives) and the poll interval (an operator's own
    RAY_TRAIN_HEALTH_CHECK_INTERVAL_S wins). On an `embedded` Ray (one machine, no node can be
    preempted) Ray Train's preemption watcher is not started: one process less, whose start
    competed with the workers' TensorFlow import (-0.8 s of start-up in a 2x2 A/B here, within
    the noise of bench_startup's medians); an operator's own RAY_TRAIN_ENABLE_PREEMPTION_WATCHER
    wins."""
    failure = spec.failure
    wanted = {RAY_TRAIN_START_TIMEOUT: str(spec.scaling.start_timeout_seconds),
              WORKER_HEALTH_CHECK_TIMEOUT_S_ENV_VAR: str(failure.collective_timeout_seconds),
              COLLECTIVE_TIMEOUT_S_ENV_VAR: str(failure.collective_deadline_seconds)}  # fmt: skip
    if RAY_TRAIN_POLL_INTERVAL not in os.environ:
        wanted[RAY_TRAIN_POLL_INTERVAL] = str(HEALTH_CHECK_INTERVAL_S)
    if embedded and ENABLE_PREEMPTION_WATCHER_ENV_VAR not in os.environ:
        wanted[ENABLE_PREEMPTION_WATCHER_ENV_VAR] = "0"
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ErrorForwarder(UserCallback):
    """Runs in the Train controller: hands worker exceptions to the driver's channel."""

    def __init__(self, sender: ProgressSender):
        self.sender = sender

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        errors = {str(k): repr(v) for k, v in worker_exceptions.items()}
        self.sender.send(WorkerMessage(ERROR, -1, -1, -1, time.time(), errors))


def build_trainer(spec: JobSpec, store: RunStore, config: WorkerConfig, dataset: Any,
                  sender: ProgressSender, callbacks: tuple[Any, ...] = ()) -> SlimrayTrainer:  # fmt: skip
    """The job's Ray Train trainer: its workers, backend, checkpoints and failure policy
    (`callbacks`: more Ray Train callbacks, which tests use to inject faults)."""
    resources = {"CPU": spec.scaling.cpus_per_worker}
    if spec.scaling.use_gpu and spec.scaling.gpus_per_worker:
        resources["GPU"] = spec.scaling.gpus_per_worker
    # a group that cannot be placed in time fails the job (controller failures are not retried);
    # RestartPolicy retries a worker lost at start-up within max_failures, like any other
    failure = FailureConfig(max_failures=spec.failure.max_failures, controller_failure_limit=0)
    scaling = ray_scaling(spec, resources)
    return SlimrayTrainer(
        train_loop_per_worker,
        train_loop_config={"worker": config},
        backend_config=get_backend(spec.backend).ray_config(),
        scaling_config=scaling,
        run_config=RunConfig(
            name="checkpoints",
            storage_path=store.ray_storage_path,
            failure_config=failure,
            checkpoint_config=CheckpointConfig(num_to_keep=3),
            callbacks=[ErrorForwarder(sender), *callbacks],
        ),
        datasets={"train": dataset} if dataset is not None else None,
        failure_policy=RestartPolicy(failure, sender, spec.scaling.max_workers, spec.scaling.elastic),
        scaling_policy=scaling_policy(spec, scaling),
    )

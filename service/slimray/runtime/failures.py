"""Ray Train's failure policy, slimray's way: a worker lost while the group starts is retried like
any worker failure (within `failure.max_failures`), a group that cannot be placed still fails at
once with Ray's reason, and every retry is told to the driver with its cause, naming the ranks."""

from __future__ import annotations

import time
from typing import Any

from ray.train.v2._internal.exceptions import (
    WorkerGroupStartupFailedError,
    WorkerGroupStartupTimeoutError,
    WorkerHealthCheckTimeoutError,
)
from ray.train.v2._internal.execution.failure_handling import FailureDecision
from ray.train.v2._internal.execution.failure_handling.default import (
    DefaultFailurePolicy,
    _is_preemption_failure,
)
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

from slimray.core.records import RestartReason
from slimray.runtime.progress import RESTART, ProgressSender, WorkerMessage


class CollectiveTimeoutError(TimeoutError):
    """A collective (gradient allreduce, score or digest reduce) waited past its timeout: a peer
    never joined it. The ranks that did not raise this are the ones that did not answer."""


class PeerUnreachableError(CollectiveTimeoutError):
    """A collective's transport gave up on a peer (gRPC UNAVAILABLE), often before the health
    check names it: the peer froze, or its process or node is gone (the two read the same)."""


# what a worker raises when a collective got no answer (`worker.WorkerLoop`), and how the ranks
# that raised nothing read then: a timeout means they hung; an unreachable peer, hung or lost
WAITING_ERRORS = {PeerUnreachableError.__name__: "hung or lost", CollectiveTimeoutError.__name__: "hung"}


def _waiting(error: BaseException) -> str | None:
    """How the silent ranks read if `error` is a collective that got no answer, else None."""
    text = repr(error)
    return next((how for name, how in WAITING_ERRORS.items() if name in text), None)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _lost_at_startup(error: Exception) -> bool:
    """A worker died while the group was starting (not: the group could not be placed)."""
    return isinstance(error, ControllerError) and isinstance(
        error.controller_failure, WorkerGroupStartupFailedError
    )


def _unplaced(error: Exception) -> bool:
    """The group could not be placed in time (Ray sized it on capacity that has gone since)."""
    return isinstance(error, ControllerError) and isinstance(
        error.controller_failure, WorkerGroupStartupTimeoutError
    )


# what a group raises alike on every try: the job's own model refused (`prune.strict`); retrying
# would only repeat the start-up, so the job fails at once with it. Named, not imported: the
# controller does not load the pruning engine (and Keras) for a check.
PERMANENT_ERRORS = frozenset({"slimray.pruning.errors.UnsupportedLayerError"})


def _is_permanent(error: Exception) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" in PERMANENT_ERRORS for c in type(error).__mro__)


def permanent(error: Exception) -> bool:
    """Every rank that failed raised an error no retry can change."""
    failures = error.worker_failures if isinstance(error, WorkerGroupError) else None
    return bool(failures) and all(_is_permanent(e) for e in failures.values())


def _worker_causes(error: WorkerGroupError, world: int) -> tuple[RestartReason, str]:
    """The ranks that failed and how: frozen ones (Ray's health check) and, when every other rank
    that failed waited in a collective, the ranks that never joined it."""
    failures = error.worker_failures
    frozen = sorted(r for r, e in failures.items() if isinstance(e, WorkerHealthCheckTimeoutError))
    waiting = {r: how for r, e in failures.items() if (how := _waiting(e)) is not None}
    others = set(failures) - set(frozen) - set(waiting)  # a crash: nobody is known to be silent
    silent = sorted(set(range(world)) - set(failures)) if waiting and not others else []
    how = "hung or lost" if "hung or lost" in waiting.values() else "hung"
    hung = frozen + silent
    parts = [f"rank {r} did not answer (hung)" for r in frozen]
    parts += [f"rank {r} did not answer ({how})" for r in silent]
    parts += [f"rank {r}: {first_line(e)}" for r, e in sorted(failures.items()) if r not in frozen]
    reason = RestartReason.WORKER_HUNG if hung else RestartReason.WORKER_FAILED
    return reason, "; ".join(parts) or first_line(error)


def describe(error: Exception, world: int) -> tuple[RestartReason, str]:
    """Why the group failed, as a restart's reason and a sentence naming the ranks."""
    if _lost_at_startup(error):
        cause = error.controller_failure.__cause__ or error.controller_failure
        lost = f"a worker was lost while the group started ({first_line(cause)})"
        return RestartReason.STARTUP_FAILED, lost
    if _unplaced(error):
        timeout = first_line(error.controller_failure)
        return RestartReason.STARTUP_FAILED, f"the group could not be placed in time, sized again ({timeout})"
    if _is_preemption_failure(error):
        return RestartReason.PREEMPTED, first_line(error)
    if isinstance(error, WorkerGroupError):
        return _worker_causes(error, world)
    return RestartReason.WORKER_FAILED, first_line(error)


class RestartPolicy(DefaultFailurePolicy):
    """Runs in the Train controller. Ray charges a worker lost at start-up to
    `controller_failure_limit` (0 here, so that an unplaceable group fails); this policy charges
    it to `max_failures` like any worker failure, and reports every retry to the driver. An
    elastic job's group that could not be placed is charged there too: Ray's elastic policy sized
    it on nodes that had just gone (a node lost is seen dead seconds after its workers), and the
    next try sizes it again; an elastic job that never fits `min` fails on its own deadline. An
    error every retry would repeat (`PERMANENT_ERRORS`) fails the job at once."""

    def __init__(self, failure_config: Any, sender: ProgressSender | None, world: int, elastic: bool = False):
        super().__init__(failure_config)
        self.sender, self.world, self.elastic = sender, world, elastic

    def make_decision(self, training_failed_error: Any) -> FailureDecision:
        error = training_failed_error
        if permanent(error):
            return FailureDecision.RAISE
        if _lost_at_startup(error) or (self.elastic and _unplaced(error)):
            decision = self._worker_failure()
        else:
            decision = super().make_decision(training_failed_error)
        if decision is FailureDecision.RETRY and self.sender is not None:
            reason, cause = describe(training_failed_error, self.world)
            payload = {"reason": reason.value, "cause": cause}
            self.sender.send(WorkerMessage(RESTART, -1, -1, -1, time.time(), payload))
        return decision

    def _worker_failure(self) -> FailureDecision:
        self._worker_group_failures += 1
        limit = self.failure_config.max_failures
        exhausted = limit != -1 and self._worker_group_failures > limit
        return FailureDecision.RAISE if exhausted else FailureDecision.RETRY


class SlimrayTrainer(DataParallelTrainer):
    """Ray Train's `DataParallelTrainer` whose controller runs `RestartPolicy` and, for a worker
    range, slimray's elastic policy (Ray 2.60 builds its policies inside `fit()`, with no setting)."""

    def __init__(self, *args: Any, failure_policy: RestartPolicy, scaling_policy: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.restart_policy, self.elastic_policy = failure_policy, scaling_policy

    def _initialize_and_run_controller(self, **controller_init_kwargs: Any) -> Any:
        controller_init_kwargs["failure_policy"] = self.restart_policy
        if self.elastic_policy is not None:  # `elastic.DeadlineElasticPolicy` for a worker range
            controller_init_kwargs["scaling_policy"] = self.elastic_policy
        return super()._initialize_and_run_controller(**controller_init_kwargs)

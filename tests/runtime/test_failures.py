"""The failure policy the Train controller runs: a worker lost at start-up is retried within
`max_failures`, an unplaceable group is not, and every retry reaches the driver naming the ranks."""

from __future__ import annotations

from ray.train import FailureConfig
from ray.train.v2._internal.exceptions import (
    WorkerGroupStartupFailedError,
    WorkerGroupStartupTimeoutError,
    WorkerHealthCheckTimeoutError,
)
from ray.train.v2._internal.execution.failure_handling import FailureDecision
from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

from slimray.runtime.failures import CollectiveTimeoutError, PeerUnreachableError, RestartPolicy, describe


class _Sender:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


def _policy(max_failures=2):
    sender = _Sender()
    config = FailureConfig(max_failures=max_failures, controller_failure_limit=0)
    return RestartPolicy(config, sender, world=3), sender


def test_a_worker_lost_at_startup_is_retried_within_max_failures():
    """Regression: with controller_failure_limit=0 the first start-up loss failed the job."""
    policy, sender = _policy(max_failures=2)
    lost = ControllerError(WorkerGroupStartupFailedError("At least one of the worker actors failed"))
    decisions = [policy.make_decision(lost) for _ in range(3)]
    assert decisions == [FailureDecision.RETRY] * 2 + [FailureDecision.RAISE]
    assert [m.payload["reason"] for m in sender.sent] == ["startup_failed"] * 2


def test_a_model_strict_pruning_refuses_fails_at_once_and_a_mixed_failure_is_retried():
    """A refusal every try repeats (BlockedModelError, an UnsupportedLayerError) is not retried:
    a strict job failed only after 3 start-ups; a crash beside it still is."""
    from slimray.pruning.errors import BlockedModelError

    policy, sender = _policy(max_failures=2)
    refused = {0: BlockedModelError([]), 1: BlockedModelError([])}
    assert policy.make_decision(WorkerGroupError("refused", refused)) is FailureDecision.RAISE
    assert sender.sent == []
    mixed = {0: BlockedModelError([]), 1: RuntimeError("lost")}
    assert policy.make_decision(WorkerGroupError("mixed", mixed)) is FailureDecision.RETRY


def test_an_unplaceable_group_still_fails_at_once():
    policy, sender = _policy()
    assert policy.make_decision(ControllerError(WorkerGroupStartupTimeoutError(2))) is FailureDecision.RAISE
    assert sender.sent == []


def test_the_cause_names_a_frozen_rank_and_the_ranks_a_collective_waited_for():
    frozen = WorkerGroupError("failed", {2: WorkerHealthCheckTimeoutError("hanging for 5 s")})
    assert describe(frozen, 3) == ("worker_hung", "rank 2 did not answer (hung)")
    waited = WorkerGroupError("failed", {0: CollectiveTimeoutError("rank 0: no answer"),
                                         2: CollectiveTimeoutError("rank 2: no answer")})  # fmt: skip
    reason, cause = describe(waited, 3)
    assert reason == "worker_hung" and cause.startswith("rank 1 did not answer (hung); rank 0: Collective")
    # regression: under load the gRPC transport gave up on a SIGSTOPped rank 1 before Ray's health
    # check named it, and rank 0's UnavailableError read as a plain failure (worker_failed)
    unreachable = WorkerGroupError("failed", {0: PeerUnreachableError("rank 0: lost its peers")})
    reason, cause = describe(unreachable, 2)
    assert reason == "worker_hung"
    assert cause.startswith("rank 1 did not answer (hung or lost); rank 0: PeerUnreachable")
    # but beside a rank that crashed, nobody is named silent: rank 1 may be fine (a review's case)
    crashed_too = WorkerGroupError(
        "failed", {0: PeerUnreachableError("lost its peers"), 2: RuntimeError("boom")}
    )
    assert describe(crashed_too, 3) == (
        "worker_failed",
        "rank 0: PeerUnreachableError: lost its peers; rank 2: RuntimeError: boom",
    )
    crashed = WorkerGroupError("failed", {1: RuntimeError("boom")})
    assert describe(crashed, 3) == ("worker_failed", "rank 1: RuntimeError: boom")


def test_an_elastic_group_that_could_not_be_placed_is_sized_again_within_max_failures():
    """Issue 23 point 4: a node lost mid-run is seen dead seconds after its workers; Ray's elastic
    policy sized the new group on it, the group timed out unplaced and the job failed."""
    sender = _Sender()
    config = FailureConfig(max_failures=1, controller_failure_limit=0)
    policy = RestartPolicy(config, sender, world=2, elastic=True)
    unplaced = ControllerError(WorkerGroupStartupTimeoutError(2))
    decisions = [policy.make_decision(unplaced) for _ in range(2)]
    assert decisions == [FailureDecision.RETRY, FailureDecision.RAISE]
    (message,) = sender.sent
    assert message.payload["reason"] == "startup_failed"
    assert message.payload["cause"].startswith("the group could not be placed in time, sized again")

"""Elastic training: Ray Train V2's `ElasticScalingPolicy` (a `scaling.num_workers` range), with
the start-up deadline it lacks. Below `min` workers it waits for capacity without end; slimray
fails the job after `scaling.start_timeout_seconds`, saying how many workers fit."""

from __future__ import annotations

import time
from typing import Any

from ray.train import ScalingConfig
from ray.train.v2._internal.execution.scaling_policy import ElasticScalingPolicy, ResizeDecision

from slimray.core.spec import JobSpec


class ElasticStartTimeoutError(TimeoutError):
    """Fewer than `min` workers fit for `scaling.start_timeout_seconds`: the job fails (Ray Train
    counts it as a controller failure, which is never retried), with this message as its reason."""


def ray_scaling(spec: JobSpec, resources: dict[str, float]) -> ScalingConfig:
    """The job's Ray `ScalingConfig`: a fixed count, or `(min, max)` (Ray's elastic policy)."""
    scaling = spec.scaling
    workers = (scaling.min_workers, scaling.max_workers) if scaling.elastic else scaling.num_workers
    return ScalingConfig(
        num_workers=workers, use_gpu=scaling.use_gpu, resources_per_worker=resources,
        placement_strategy=scaling.placement_strategy,
        elastic_resize_monitor_interval_s=scaling.resize_interval_seconds,
    )  # fmt: skip


class DeadlineElasticPolicy(ElasticScalingPolicy):
    """Ray's elastic policy; runs in the Train controller. While no group runs it waits for room
    for at least `min` workers, as Ray's does, but only for `start_timeout_s` at a time."""

    def __init__(self, scaling_config: ScalingConfig, start_timeout_s: float):
        super().__init__(scaling_config)
        self.start_timeout_s = start_timeout_s
        self._waiting_since: float | None = None

    def make_decision_for_non_running_worker_group(self) -> Any:
        decision = super().make_decision_for_non_running_worker_group()
        now = time.monotonic()
        if isinstance(decision, ResizeDecision):
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since > self.start_timeout_s:
            raise ElasticStartTimeoutError(self.reason())
        return decision

    def reason(self) -> str:
        """Why the job cannot start: how many workers fit, against the range's `min`."""
        reserved = self._latest_reserved_resources
        fit = self._count_possible_workers(reserved) if reserved is not None else "an unknown number of"
        config = self.scaling_config
        return (f"the cluster had room for {fit} workers, fewer than scaling.num_workers min "
                f"({config.min_workers}), for {self.start_timeout_s:g} s (scaling.start_timeout_seconds): "
                "add capacity or lower scaling.num_workers min")  # fmt: skip


def scaling_policy(spec: JobSpec, config: ScalingConfig) -> DeadlineElasticPolicy | None:
    """The controller's scaling policy for an elastic job (None: Ray's fixed one)."""
    if not spec.scaling.elastic:
        return None
    return DeadlineElasticPolicy(config, spec.scaling.start_timeout_seconds)

"""The driver's settings for Ray Train's controller: set for the job, given back after it, and an
operator's own values kept."""

from __future__ import annotations

import os

import pytest
from ray.train.v2._internal.constants import ENABLE_PREEMPTION_WATCHER_ENV_VAR

from slimray.core.spec import parse_spec
from slimray.runtime.cluster import controller_env

SPEC = parse_spec({"name": "c", "model": {"source": "seed_cnn"}, "data": {"source": "mnist"},
                   "train": {"steps": 1}, "output": {"dir": "/tmp/never-written"}})  # fmt: skip


def test_an_embedded_ray_starts_no_preemption_watcher_and_the_setting_is_given_back(monkeypatch):
    """Issue 27: a one-machine Ray has no node to preempt; the watcher's process competed with
    the workers' TensorFlow import."""
    monkeypatch.delenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, raising=False)
    with controller_env(SPEC, embedded=True):
        assert os.environ[ENABLE_PREEMPTION_WATCHER_ENV_VAR] == "0"
    assert ENABLE_PREEMPTION_WATCHER_ENV_VAR not in os.environ
    with controller_env(SPEC, embedded=False):  # a cluster's nodes can be preempted
        assert ENABLE_PREEMPTION_WATCHER_ENV_VAR not in os.environ


@pytest.mark.parametrize("embedded", [True, False])
def test_an_operators_own_watcher_setting_wins(monkeypatch, embedded):
    monkeypatch.setenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, "1")
    with controller_env(SPEC, embedded=embedded):
        assert os.environ[ENABLE_PREEMPTION_WATCHER_ENV_VAR] == "1"
    assert os.environ[ENABLE_PREEMPTION_WATCHER_ENV_VAR] == "1"

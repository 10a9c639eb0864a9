"""The Horovod backend's Ray Train set-up without Ray: ranks laid out per node as Horovod plans
hosts, and ranks interleaved across nodes refused."""

from __future__ import annotations

import pytest

from slimray.runtime.backends.horovod.config import contiguous_node_ranks, rank_environment


def test_ranks_are_laid_out_per_node_as_horovod_plans_hosts():
    env = rank_environment(["a", "a", "b"])
    assert [e["HOROVOD_RANK"] for e in env] == ["0", "1", "2"]
    assert [e["HOROVOD_LOCAL_RANK"] for e in env] == ["0", "1", "0"]
    assert [e["HOROVOD_LOCAL_SIZE"] for e in env] == ["2", "2", "1"]
    assert [e["HOROVOD_CROSS_RANK"] for e in env] == ["0", "0", "1"]
    assert [e["HOROVOD_CROSS_SIZE"] for e in env] == ["2", "1", "2"]  # local rank 0 on both nodes
    assert {e["HOROVOD_SIZE"] for e in env} == {"3"} and env[2]["HOROVOD_HOSTNAME"] == "b"


def test_ranks_interleaved_across_nodes_are_refused_naming_them():
    assert contiguous_node_ranks(["a", "a", "b"]) == {"a": [0, 1], "b": [2]}
    with pytest.raises(RuntimeError, match=r"not grouped by node \(\['a', 'b', 'a'\]\)"):
        contiguous_node_ranks(["a", "b", "a"])

"""The tf-collective backend's Ray Train set-up without Ray: the TF_CONFIG each worker gets."""

from __future__ import annotations

import json
import os

from slimray.runtime.backends.tf_collective.config import TFCollectiveConfig, set_tf_config


def test_each_worker_gets_the_cluster_and_its_own_index(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    set_tf_config(["10.0.0.1:4000", "10.0.0.2:4001"], index=1)
    assert json.loads(os.environ["TF_CONFIG"]) == {
        "cluster": {"worker": ["10.0.0.1:4000", "10.0.0.2:4001"]},
        "task": {"type": "worker", "index": 1},
    }
    assert TFCollectiveConfig().framework.name == "TENSORFLOW"

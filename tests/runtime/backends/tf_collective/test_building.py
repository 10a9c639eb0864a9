"""Building under the tf-collective backend with two real TensorFlow workers (two processes on
loopback): a peer that is alive but never joins cannot hold a rebuild for ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from slimray.service.ports import free_ports

pytestmark = pytest.mark.timeout(240)

_PEER = """
import sys, time
from slimray.runtime.backends.tf_collective.backend import TFCollectiveBackend
TFCollectiveBackend(1, 2, 3.0)
print("ready", flush=True)
time.sleep(200)  # alive, its TF server answering, but never in a collective again
"""

_REBUILDER = """
import json, time
import keras
from slimray.runtime.backends.tf_collective.backend import TFCollectiveBackend
backend = TFCollectiveBackend(0, 2, 3.0)
config = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dropout(0.5)]).get_config()
start = time.perf_counter()
try:
    with backend.building("rebuilding the model at step 7"):
        keras.Sequential.from_config(config)  # each variable's initial value: a broadcast from rank 0
    outcome = {"error": None}
except Exception as err:
    outcome = {"error": type(err).__name__, "message": str(err)[-400:]}
outcome["seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps(outcome), flush=True)
"""


def _worker(script: str, addresses: list[str], index: int) -> subprocess.Popen:
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def test_a_rebuild_whose_peer_never_joins_fails_after_the_timeout_naming_what_it_waited_for():
    """Regression: MultiWorkerMirroredStrategy broadcasts new variables' initial values with no
    timeout; a prune event's rebuild (or a restore) with a stuck peer waited for ever."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    peer = _worker(_PEER, addresses, 1)
    try:
        rebuilder = _worker(_REBUILDER, addresses, 0)
        out, _ = rebuilder.communicate(timeout=180)
    finally:
        peer.kill()
        peer.wait()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, out[-3000:]
    outcome = json.loads(line.removeprefix("RESULT "))
    assert outcome["error"] == "DeadlineExceededError", outcome
    said = "rebuilding the model at step 7: timed out waiting for other workers after 3 s"
    assert said in outcome["message"], outcome
    assert 3 <= outcome["seconds"] < 30, outcome

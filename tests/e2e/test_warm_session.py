"""The warm path as a user takes it: `slimray up`, different jobs back to back on its warm worker
processes (one of them losing a worker mid-run), the last one bit for bit the same job run cold,
then `slimray down`. One session for all: starting one is most of this module's time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.cli.helpers import ENV, slimray

JOB_A = {  # a CNN on the shipped MNIST digits (a Ray Data set), pruned once
    "name": "warm-a",
    "model": {"source": "seed_cnn", "kwargs": {"dropout": 0.3}},
    "data": {"source": "mnist"},
    "train": {"steps": 24, "batch_size": 64, "seed": 3, "report_every": 4, "learning_rate": 0.003},
    "prune": {"criterion": "taylor", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 12}},
    "scaling": {"num_workers": 2},
}
JOB_B = {  # another model, data, optimizer and seed
    "name": "warm-b",
    "model": {"source": "mlp", "kwargs": {"hidden1": 48, "hidden2": 24}},
    "data": {"source": "synthetic", "synthetic": {"samples": 1024, "shape": [12], "num_classes": 3}},
    "train": {"steps": 30, "batch_size": 32, "seed": 11, "optimizer": "sgd", "report_every": 5},
    "prune": {"criterion": "l2", "sparsity": 0.25, "schedule": {"kind": "one_shot", "step": 10}},
    "scaling": {"num_workers": 2},
}


def _spec(folder: Path, job: dict, out: str) -> Path:
    path = folder / f"{out}.yaml"
    path.write_text(yaml.safe_dump({**job, "output": {"dir": str(folder / out)}}))
    return path


def _run(env: dict[str, str], spec: Path, *flags: str) -> dict:
    proc = slimray("run", str(spec), "--quiet", *flags, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((spec.parent / spec.stem / "report.json").read_text())


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def _same_bits(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    if len(wa) != len(wb):
        return False
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in zip(wa, wb, strict=True))  # fmt: skip


# on the session at argv[1]: four refills of two processes for an env no job asks for
REFILL_FOUR_TIMES = """
import json, sys, ray
from slimray.runtime.warm import WarmEnv, find_keeper
ray.init(address=sys.argv[1], log_to_driver=False)
keeper, never_asked = find_keeper(), WarmEnv('{"env_vars": {"NEVER_ASKED": "1"}}', 2)
print(json.dumps([ray.get(keeper.refill.remote([never_asked])) for _ in range(4)]))
"""


def _train_workers_of(temp_dir: str) -> list:
    """This session's Ray Train worker processes (children of its raylet), no other test's."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or [])
            if "ray::RayTrainWorker" in title and temp_dir in " ".join(proc.parent().cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _kill_a_worker_mid_run(env: dict[str, str], spec: Path, temp_dir: str) -> dict:
    """Run `spec` on the session, SIGKILL one of its two Train workers once it trains; the report."""
    import subprocess
    import sys
    import time

    run = subprocess.Popen([sys.executable, "-m", "slimray.cli", "run", str(spec), "--quiet"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline, victim = time.time() + 300, None
    while victim is None and time.time() < deadline and run.poll() is None:
        workers = _train_workers_of(temp_dir)
        if len(workers) == 2:
            victim = workers[1]
        time.sleep(0.5)
    assert victim is not None, "no training worker of this session was found"
    time.sleep(8)  # into training (400 steps take longer than this)
    victim.kill()
    out, _ = run.communicate(timeout=600)
    assert run.returncode == 0, out[-4000:]
    return json.loads((spec.parent / spec.stem / "report.json").read_text())


def _refills_stop_at_two_idle_sets(env: dict[str, str], session: Path) -> None:
    """Refills no job takes stop at two sets idle: processes do not pile up."""
    import subprocess
    import sys

    gcs = json.loads((session / "session.json").read_text())["gcs"]
    auth = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": (session / "ray_token").read_text().strip()}
    capped = subprocess.run([sys.executable, "-c", REFILL_FOUR_TIMES, gcs], capture_output=True,
                            text=True, timeout=600, env=auth)  # fmt: skip
    assert capped.returncode == 0, capped.stderr[-3000:]
    assert json.loads(capped.stdout.strip().splitlines()[-1])[-1] == 0, capped.stdout


@pytest.mark.timeout(1800)
def test_jobs_on_one_warm_session_start_warm_survive_a_kill_and_match_the_same_job_run_cold(tmp_path):
    """One session for three jobs: A, a longer A whose worker is SIGKILLed mid-run (replaced, the
    job resumes), then B, which is bit for bit the same job run cold once `down` ended the session
    (B ran on the processes A and the kill used: nothing of theirs reached it)."""
    session = tmp_path / "session"
    env = {**ENV, "SLIMRAY_SESSION_DIR": str(session)}
    a_warm, b_warm = _spec(tmp_path, JOB_A, "a_warm"), _spec(tmp_path, JOB_B, "b_warm")
    b_cold = _spec(tmp_path, JOB_B, "b_cold")
    long_a = {**JOB_A, "name": "warm-kill", "train": {**JOB_A["train"], "steps": 400, "checkpoint_every": 40}}
    killed = _spec(tmp_path, long_a, "kill")
    up = slimray("up", "--like", str(a_warm), "--num-cpus", "4", env=env, timeout=600)
    assert up.returncode == 0 and "session up" in up.stdout, up.stdout[-2000:] + up.stderr[-3000:]
    record = json.loads((session / "session.json").read_text())
    try:
        first = _run(env, a_warm)
        settled = slimray("up", env=env, timeout=600)  # already up: waits for the keeper's refill
        assert "already up" in settled.stdout, settled.stdout + settled.stderr[-2000:]
        kill_report = _kill_a_worker_mid_run(env, killed, str(Path(record["log"]).parent))
        slimray("up", env=env, timeout=600)
        second = _run(env, b_warm)
        # each job's rank 0 was a process started before the job, TensorFlow already imported
        for report in (first, second):
            assert report["state"] == "succeeded"
            assert report["startup"]["warm"] is True, report["startup"]
            assert report["startup"]["worker_processes"] == 0.0
            assert report["startup"]["framework_import"] < 1.5, report["startup"]
        _refills_stop_at_two_idle_sets(env, session)
    finally:
        down = slimray("down", env=env, timeout=120)
    assert down.returncode == 0 and "session down" in down.stdout
    assert not (session / "session.json").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(record["pgid"], 0)
    assert kill_report["state"] == "succeeded" and kill_report["restarts"], kill_report.get("restarts")
    assert kill_report["params"]["after"] < kill_report["params"]["before"]
    assert kill_report["startup"]["warm"] is True
    # B ran after A and the kill on the same processes: nothing of theirs reached it. No session
    # now: the cold run starts a Ray of its own
    cold = _run(env, b_cold)
    assert cold["startup"]["warm"] is False
    assert _same_bits(tmp_path / "b_warm", tmp_path / "b_cold")
    assert second["params"] == cold["params"] and first["params"]["after"] < first["params"]["before"]

"""One job run, started the way a user starts it and watched from outside: `slimray run` as a
subprocess against the cluster, or a job submitted to `slimray serve` (which submits its driver
to Ray's job API). Both niced, each bounded by a wall limit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from faults.cluster import LocalCluster, free_port
from faults.procs import driver_pid

BIN = Path(sys.executable).parent
NICE = ["nice", "-n", "10"]
TERMINAL = ("succeeded", "failed", "cancelled")
TOKEN = "fault-bench-token"


@dataclass(frozen=True)
class JobEnd:
    state: str  # succeeded, failed, cancelled, timed out
    wall_seconds: float
    detail: str = ""


class CliJob:
    """`slimray run spec.json --address <cluster>`: the driver is this subprocess."""

    def __init__(self, cluster: LocalCluster, spec: dict[str, Any], workdir: Path):
        self.run_dir = Path(spec["output"]["dir"])
        path = workdir / "spec.json"
        path.write_text(json.dumps(spec))
        self.log = workdir / "driver.log"
        cmd = [*NICE, str(BIN / "slimray"), "run", str(path), "--address", cluster.address, "--overwrite",
               "--quiet"]  # fmt: skip
        self.started = time.monotonic()
        out = self.log.open("w")
        self.proc = subprocess.Popen(cmd, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, limit: float) -> JobEnd:
        try:
            code = self.proc.wait(max(1.0, limit - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            return JobEnd("timed out", time.monotonic() - self.started, f"over the {limit:.0f} s wall limit")
        wall = time.monotonic() - self.started
        tail = self.log.read_text(errors="replace")[-800:]
        return JobEnd("succeeded" if code == 0 else "failed", wall, "" if code == 0 else tail)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


class ServiceJob:
    """`slimray serve` against the cluster's job API, and one job submitted to it over HTTP."""

    def __init__(self, cluster: LocalCluster, spec: dict[str, Any], workdir: Path):
        self.cluster, self.workdir = cluster, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service = self._serve()
        body = {key: value for key, value in spec.items() if key != "output"}  # the service's runs_root
        self.started = time.monotonic()
        response = httpx.post(f"{self.url}/v1/jobs", json=body, headers=self._auth(), timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"the service refused the job: {response.status_code} {response.text[:500]}")
        self.job_id = response.json()["id"]
        self.run_dir = workdir / "runs" / self.job_id
        self.last: dict[str, Any] = {}

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def _serve(self) -> subprocess.Popen:
        env = {**self.cluster.env, "SLIMRAY_API_TOKEN": TOKEN,
               "SLIMRAY_DB_PATH": str(self.workdir / "state" / "jobs.db"),
               "SLIMRAY_RUNS_ROOT": str(self.workdir / "runs"), "SLIMRAY_RUNS_SHARED": "true",
               "SLIMRAY_RAY_ADDRESS": self.cluster.dashboard, "SLIMRAY_SERVICE_URL": self.url,
               "SLIMRAY_DRIVER_PYTHON": sys.executable, "SLIMRAY_RECONCILE_SECONDS": "2"}  # fmt: skip
        cmd = [*NICE, str(BIN / "slimray"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        log = (self.workdir / "service.log").open("w")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return proc
            time.sleep(0.5)
        raise RuntimeError(f"the service did not answer: see {self.workdir / 'service.log'}")

    def job(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{self.url}/v1/jobs/{self.job_id}", headers=self._auth(), timeout=10)
            if response.status_code == 200:
                self.last = response.json()
        return self.last

    def running(self) -> bool:
        return self.job().get("state") not in TERMINAL

    def driver_pid(self) -> int | None:
        return driver_pid(self.cluster.dashboard, self.cluster.auth, "slimray_job", self.job_id)

    def wait(self, limit: float) -> JobEnd:
        while time.monotonic() - self.started < limit:
            job = self.job()
            if job.get("state") in TERMINAL:
                return JobEnd(job["state"], time.monotonic() - self.started, str(job.get("error") or ""))
            time.sleep(1)
        return JobEnd("timed out", time.monotonic() - self.started, f"over the {limit:.0f} s wall limit")

    def transitions(self) -> list[str]:
        return [t.get("to_state") for t in self.job().get("transitions") or []]

    def stop(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(f"{self.url}/v1/jobs/{self.job_id}", headers=self._auth(), timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.service.pid, signal.SIGTERM)
        try:
            self.service.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.service.pid, signal.SIGKILL)
            self.service.wait(30)

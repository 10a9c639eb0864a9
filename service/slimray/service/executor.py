"""Runs jobs on a Ray cluster through Ray's job REST API (the dashboard's /api/jobs/), with a
timeout on every call; the service never imports Ray, so a hung Ray cannot hang the service."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from slimray.core.contract import DRIVER_MODULE, PROBE_MODULE, PROBE_TAG
from slimray.core.envvars import QUIET_TF, DriverEnv
from slimray.core.jobstate import JobState


class RayUnavailable(RuntimeError):
    """The Ray job server could not be reached in time, or failed the call."""


# Ray's job statuses -> ours (PENDING stays queued)
_STATUS = {
    "PENDING": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}


@dataclass(frozen=True)
class RayJobStatus:
    state: JobState | None  # None: Ray has no record of the job
    message: str = ""
    pending: bool = False  # Ray accepted it but has not started its driver


@dataclass(frozen=True)
class DriverLaunch:
    """What a job's driver is started with: its id, spec, where to report and its credential."""

    job_id: str
    spec: dict[str, Any]
    event_token: str

    @property
    def submission_id(self) -> str:
        return submission_id(self.job_id)


@dataclass(frozen=True)
class DriverLog:
    text: str
    truncated: bool  # only the end is kept (`max_log_bytes`)


def submission_id(job_id: str) -> str:
    """Ray's submission id for a job: deterministic, so a resubmission finds the first one."""
    return f"slimray-{job_id}"


class RayJobExecutor:
    """Submit, stop, poll and read logs of job drivers (`python -m slimray.runtime.submitted`)."""

    def __init__(self, address: str, driver_python: str, service_url: str,
                 ray_token: str | None = None, timeout: float = 5.0):  # fmt: skip
        self.address = address.rstrip("/")
        self.driver_python = driver_python
        self.service_url = service_url
        headers = {"Authorization": f"Bearer {ray_token}"} if ray_token else {}
        self._http = httpx.Client(base_url=self.address, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise RayUnavailable(f"{what} failed at {self.address}: {type(err).__name__}: {err}") from err
        if response.status_code in (401, 403):
            raise RayUnavailable(f"{what}: Ray at {self.address} refused our token ({response.status_code})")
        return response

    def submit(self, launch: DriverLaunch) -> str:
        """Submit the driver; a submission id Ray already holds is that same job (idempotent)."""
        driver = DriverEnv(launch.job_id, launch.spec, self.service_url, launch.event_token)
        env = {**driver.to_env(), **QUIET_TF}
        body = {
            "entrypoint": f"{shlex.quote(self.driver_python)} -m {DRIVER_MODULE}",
            "submission_id": launch.submission_id,
            "runtime_env": {"env_vars": env},
            "metadata": {"slimray_job": launch.job_id},
        }
        response = self._request("submit", "POST", "/api/jobs/", json=body)
        # Ray 2.60 answers 500 with its ValueError's traceback: "... already exists"
        if response.status_code >= 400 and "already exists" in response.text:
            return launch.submission_id
        if response.status_code != 200:
            raise RayUnavailable(f"submit: Ray answered {response.status_code}: {response.text[-500:]}")
        return response.json().get("submission_id") or launch.submission_id

    def status(self, ray_job_id: str) -> RayJobStatus:
        response = self._request("status", "GET", f"/api/jobs/{ray_job_id}")
        if response.status_code == 404:
            return RayJobStatus(None, "Ray has no record of this job")
        if response.status_code != 200:
            raise RayUnavailable(f"status: Ray answered {response.status_code}")
        info = response.json()
        status = str(info.get("status", ""))
        return RayJobStatus(_STATUS.get(status), info.get("message") or "", pending=status == "PENDING")

    def stop(self, ray_job_id: str) -> bool:
        """True once Ray stops it (or has no record of it); False if it was already finished."""
        response = self._request("stop", "POST", f"/api/jobs/{ray_job_id}/stop")
        if response.status_code == 404:
            return True
        if response.status_code != 200:
            raise RayUnavailable(f"stop: Ray answered {response.status_code}")
        return bool(response.json().get("stopped"))

    def logs(self, ray_job_id: str, max_bytes: int) -> DriverLog:
        """The last `max_bytes` of the driver's log (empty if Ray has none)."""
        response = self._request("logs", "GET", f"/api/jobs/{ray_job_id}/logs")
        if response.status_code == 404:
            return DriverLog("", False)
        if response.status_code != 200:
            raise RayUnavailable(f"logs: Ray answered {response.status_code}")
        data = (response.json().get("logs") or "").encode()
        if len(data) <= max_bytes:
            return DriverLog(data.decode(errors="replace"), False)
        return DriverLog(data[-max_bytes:].decode(errors="replace"), True)

    def check_backend(self, backend: str, timeout: float = 120.0) -> str | None:
        """What the cluster lacks to run `backend` (None: nothing): a probe job's tiny Ray task
        answers (`slimray.runtime.probe`). RayUnavailable if it cannot say in `timeout` s."""
        probe_id = f"slimray-probe-{backend}-{uuid.uuid4().hex[:8]}"
        command = f"{shlex.quote(self.driver_python)} -m {PROBE_MODULE} {shlex.quote(backend)}"
        body = {"entrypoint": command,
                "submission_id": probe_id, "runtime_env": {"env_vars": dict(QUIET_TF)},
                "metadata": {"slimray_probe": backend}}  # fmt: skip
        # a fresh head's job agent may take longer than one call's timeout to take its first job
        response = self._request(
            "backend check", "POST", "/api/jobs/", json=body, timeout=max(30.0, timeout / 4)
        )
        if response.status_code != 200:
            raise RayUnavailable(
                f"backend check: Ray answered {response.status_code}: {response.text[-300:]}"
            )
        deadline = time.monotonic() + timeout
        while (state := self.status(probe_id).state) not in (JobState.SUCCEEDED, JobState.FAILED):
            if time.monotonic() > deadline or state == JobState.CANCELLED:
                self.stop(probe_id)
                raise RayUnavailable(
                    f"backend check: the probe job {probe_id} did not finish in {timeout:.0f} s"
                )
            time.sleep(0.5)
        log = self.logs(probe_id, 64 * 1024).text
        lines = [line for line in log.splitlines() if line.startswith(PROBE_TAG)]
        if not lines:
            raise RayUnavailable(f"backend check: the probe job {probe_id} gave no answer: {log[-500:]}")
        return json.loads(lines[-1][len(PROBE_TAG) :])["missing"]

    def alive_nodes(self) -> int:
        """How many nodes of the cluster are alive (Ray's state API)."""
        response = self._request("nodes", "GET", "/api/v0/nodes", params={"limit": 10_000, "detail": "false"})
        if response.status_code != 200:
            raise RayUnavailable(f"nodes: Ray answered {response.status_code}")
        rows = response.json().get("data", {}).get("result", {}).get("result", [])
        return sum(1 for row in rows if row.get("state") == "ALIVE")

    def reachable(self) -> bool:
        try:
            return self._request("probe", "GET", "/api/version").status_code == 200
        except RayUnavailable:
            return False

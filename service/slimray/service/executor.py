"""Runs jobs on a Ray cluster through Ray's job REST API (the dashboard's /api/jobs/), with a
timeout on every call; the service never imports Ray, so a hung Ray cannot hang the service."""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from slimray.core.contract import DRIVER_MODULE, PROBE_MODULE, PROBE_TAG, WARM_MODULE
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
    lost: str | None = None  # failed for a reason outside the training code: the cause


# how Ray 2.60 reports a driver lost for reasons outside its code: the job's error_type, and the
# exit code of an entrypoint killed by a signal (-N from Python's subprocess, 128+N from a shell)
LOST_ERROR_TYPES = {
    "JOB_SUPERVISOR_ACTOR_DIED": "the driver's supervisor died (its node was lost)",
    "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE": "Ray lost track of the driver's supervisor",
}
KILLED_EXIT_CODES = {-9: "SIGKILL", 137: "SIGKILL", -15: "SIGTERM", 143: "SIGTERM"}


def lost_cause(info: dict[str, Any]) -> str | None:
    """Why Ray's failed job lost its driver outside the training code, or None (its own failure)."""
    if info.get("status") != "FAILED":
        return None
    error_type, code = info.get("error_type"), info.get("driver_exit_code")
    if error_type in LOST_ERROR_TYPES:
        return f"{LOST_ERROR_TYPES[error_type]} ({error_type})"
    if error_type == "JOB_ENTRYPOINT_COMMAND_ERROR" and code in KILLED_EXIT_CODES:
        return f"the driver process was killed from outside ({KILLED_EXIT_CODES[code]}, exit code {code})"
    return None


@dataclass(frozen=True)
class DriverLaunch:
    """What a job's driver is started with: its id, spec, the claim of its event token (the
    token itself is not put where Ray's job list shows it), and its Ray submission id."""

    job_id: str
    spec: dict[str, Any]
    event_claim: str
    ray_job_id: str | None = None  # None: the job's first, `submission_id(job_id)`
    resume: bool = False  # a resubmission: the driver goes on from the run's last checkpoint

    @property
    def submission_id(self) -> str:
        return self.ray_job_id or submission_id(self.job_id)


@dataclass(frozen=True)
class DriverLog:
    text: str
    truncated: bool  # only the end is kept (`max_log_bytes`)


DRIVER_LOG = "job-driver-{submission_id}.log"  # Ray's name for a submitted driver's log file


def tail_lines(max_bytes: int) -> int:
    """Lines asked of Ray for a tail of `max_bytes`: a bound on what Ray sends, as its log API
    counts lines; 16 bytes a line on average fills the tail."""
    return max(100, max_bytes // 16)


def _tail(chunks: Iterator[bytes], max_bytes: int, lines: int) -> DriverLog:
    """The last `max_bytes` of a stream of chunks, never holding more than twice that (plus a
    chunk); truncated if more came, or as many lines as were asked for."""
    kept, total, newlines = bytearray(), 0, 0
    for chunk in chunks:
        kept += chunk
        total += len(chunk)
        newlines += chunk.count(b"\n")
        if len(kept) > 2 * max_bytes:
            del kept[: len(kept) - max_bytes]
    truncated = total > max_bytes or newlines >= lines
    return DriverLog(bytes(kept[-max_bytes:]).decode(errors="replace"), truncated)


def submission_id(job_id: str, resubmission: int = 0) -> str:
    """Ray's submission id for a job: deterministic, so a submission retried after a crash finds
    the first one; a resubmission after a lost driver is `-r<n>`."""
    return f"slimray-{job_id}" + (f"-r{resubmission}" if resubmission else "")


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
        driver = DriverEnv(launch.job_id, launch.spec, self.service_url, launch.event_claim or None,
                           launch.resume)  # fmt: skip
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

    def keep_warm(self) -> str:
        """Submit the warm-keeper job (`python -m slimray.runtime.warm`): it starts the cluster's
        keeper and prestarts a job's worker processes, sized to the cluster; its submission id."""
        warm_id = f"slimray-warm-{uuid.uuid4().hex[:8]}"
        body = {"entrypoint": f"{shlex.quote(self.driver_python)} -m {WARM_MODULE}",
                "submission_id": warm_id, "runtime_env": {"env_vars": dict(QUIET_TF)},
                "metadata": {"slimray_warm": "1"}}  # fmt: skip
        response = self._request("keep warm", "POST", "/api/jobs/", json=body)
        if response.status_code != 200:
            raise RayUnavailable(f"keep warm: Ray answered {response.status_code}: {response.text[-300:]}")
        return warm_id

    def session_name(self) -> str | None:
        """Ray's session name (new each time the cluster starts: a new cluster has no keeper), or
        None when Ray's job API does not answer: the reconciler's probe."""
        try:
            response = self._request("probe", "GET", "/api/version")
        except RayUnavailable:
            return None
        return str(response.json().get("session_name", "")) if response.status_code == 200 else None

    def _info(self, what: str, ray_job_id: str) -> dict[str, Any] | None:
        """Ray's record of a submitted job (its JobDetails), None if Ray has none."""
        response = self._request(what, "GET", f"/api/jobs/{ray_job_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RayUnavailable(f"{what}: Ray answered {response.status_code}")
        return response.json()

    def status(self, ray_job_id: str) -> RayJobStatus:
        info = self._info("status", ray_job_id)
        if info is None:
            return RayJobStatus(None, "Ray has no record of this job")
        status = str(info.get("status", ""))
        return RayJobStatus(_STATUS.get(status), info.get("message") or "", pending=status == "PENDING",
                            lost=lost_cause(info))  # fmt: skip

    def stop(self, ray_job_id: str) -> bool:
        """True once Ray stops it (or has no record of it); False if it was already finished."""
        response = self._request("stop", "POST", f"/api/jobs/{ray_job_id}/stop")
        if response.status_code == 404:
            return True
        if response.status_code != 200:
            raise RayUnavailable(f"stop: Ray answered {response.status_code}")
        return bool(response.json().get("stopped"))

    def logs(self, ray_job_id: str, max_bytes: int) -> DriverLog:
        """The end of the driver's log (empty if Ray has none), at most `max_bytes` and
        `tail_lines(max_bytes)` lines: Ray's log API sends only the last lines of the file, and
        they are read as a stream keeping at most twice `max_bytes` (issue 23 M2: the whole log
        was fetched as one JSON string, decoded and encoded again)."""
        info = self._info("logs", ray_job_id)
        node = (info or {}).get("driver_node_id")
        if not node:  # no record, or its driver never started: no log file
            return DriverLog("", False)
        lines = tail_lines(max_bytes)
        params = {"node_id": node, "filename": DRIVER_LOG.format(submission_id=ray_job_id), "lines": lines}
        try:
            with self._http.stream("GET", "/api/v0/logs/file", params=params) as response:
                if response.status_code != 200:
                    detail = next(response.iter_bytes(), b"")[:500].decode(errors="replace")
                    raise RayUnavailable(f"logs: Ray answered {response.status_code}: {detail}")
                return _tail(response.iter_bytes(), max_bytes, lines)
        except httpx.HTTPError as err:
            raise RayUnavailable(f"logs failed at {self.address}: {type(err).__name__}: {err}") from err

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
        return self.session_name() is not None

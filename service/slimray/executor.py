"""Runs jobs on a Ray cluster through Ray's job submission client (HTTP), nothing else."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from slimray.jobstate import JobState


class RayUnavailable(RuntimeError):
    """The Ray job server could not be reached or refused the call."""


# Ray's job statuses -> ours (PENDING stays queued)
_STATUS = {
    "PENDING": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "STOPPED": JobState.CANCELLED,
}


@dataclass
class RayJobStatus:
    state: JobState | None  # None: Ray has no record of the job
    message: str = ""


class RayJobExecutor:
    """Submit, stop, poll and read logs of job drivers (`python -m slimray.runtime.submitted`)."""

    def __init__(self, address: str, driver_python: str, service_url: str, token: str | None):
        self.address = address
        self.driver_python = driver_python
        self.service_url = service_url
        self.token = token
        self._client = None

    def _connect(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as err:  # connection refused, version probe failed, ...
                raise RayUnavailable(f"Ray job server at {self.address} is unreachable: {err}") from err
        return self._client

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        client = self._connect()
        try:
            return fn(client, *args, **kwargs)
        except RuntimeError as err:
            if "does not exist" in str(err) or "not found" in str(err).lower():
                raise LookupError(str(err)) from err
            self._client = None
            raise RayUnavailable(f"{what} failed at {self.address}: {err}") from err
        except Exception as err:
            self._client = None
            raise RayUnavailable(f"{what} failed at {self.address}: {err}") from err

    def submit(self, job_id: str, spec: dict[str, Any]) -> str:
        env = {
            "SLIMRAY_JOB_ID": job_id,
            "SLIMRAY_JOB_SPEC": json.dumps(spec),
            "SLIMRAY_SERVICE_URL": self.service_url,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if self.token:
            env["SLIMRAY_API_TOKEN"] = self.token
        entrypoint = f"{shlex.quote(self.driver_python)} -m slimray.runtime.submitted"
        submission_id = f"slimray-{job_id}"

        def submit(client):
            return client.submit_job(
                entrypoint=entrypoint, submission_id=submission_id, runtime_env={"env_vars": env}
            )

        return self._call("submit", submit)

    def status(self, ray_job_id: str) -> RayJobStatus:
        try:
            info = self._call("status", lambda c: c.get_job_info(ray_job_id))
        except LookupError:
            return RayJobStatus(None, "Ray has no record of this job")
        status = str(getattr(info.status, "value", info.status))
        return RayJobStatus(_STATUS.get(status), info.message or "")

    def stop(self, ray_job_id: str) -> bool:
        return bool(self._call("stop", lambda c: c.stop_job(ray_job_id)))

    def logs(self, ray_job_id: str) -> str:
        return self._call("logs", lambda c: c.get_job_logs(ray_job_id))

    def reachable(self) -> bool:
        try:
            self._connect()
            return True
        except RayUnavailable:
            return False

"""Entry point of a job driver submitted by the service: spends its one-time claim for its
event token, runs the job on the cluster and posts progress back to the service, buffering and
retrying while the service is unreachable."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

import httpx

from slimray.core.envvars import RAY_JOB_CONFIG, DriverEnv
from slimray.core.jobstate import JobState
from slimray.core.jsonsafe import finite
from slimray.core.spec import parse_spec


class EventPoster:
    """Sends driver events to `POST /v1/jobs/{id}/events` from a background thread, in order.

    A service restart loses nothing: events wait in memory and are retried until accepted.
    """

    def __init__(self, service_url: str, job_id: str, token: str | None, retry_seconds: float = 1.0):
        self.url = f"{service_url.rstrip('/')}/v1/jobs/{job_id}/events"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retry_seconds = retry_seconds
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slimray-events", daemon=True)
        self._thread.start()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self._queue.put({"kind": kind, "data": finite(data)})

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                while True:
                    try:
                        response = client.post(self.url, json=item, headers=self.headers)
                        if response.status_code < 500 and response.status_code != 429:
                            break  # accepted, or refused for good (logged by the service)
                    except httpx.HTTPError:
                        pass
                    time.sleep(self.retry_seconds)

    def close(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for queued events to be delivered."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()


class ClaimRefused(RuntimeError):
    """The service refused this driver's claim: spent already (someone else read it) or not ours."""


def claim_event_token(driver: DriverEnv, patience: float = 600.0, retry_seconds: float = 1.0) -> str | None:
    """The job's event token for the driver's claim (`POST /v1/jobs/{id}/claim`), retried while
    the service is unreachable for up to `patience` s; None if the service handed no claim."""
    if not driver.event_claim:
        return None
    url = f"{driver.service_url.rstrip('/')}/v1/jobs/{driver.job_id}/claim"
    headers = {"Authorization": f"Bearer {driver.event_claim}"}
    deadline = time.monotonic() + patience
    while True:
        try:
            response = httpx.post(url, headers=headers, timeout=10.0)
            if response.status_code == 200:
                return response.json()["event_token"]
            if response.status_code < 500 and response.status_code != 429:
                raise ClaimRefused(f"the service refused job {driver.job_id}'s claim: {response.text[:300]}")
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ClaimRefused(
                f"the service at {driver.service_url} did not answer the claim in {patience:.0f} s"
            )
        time.sleep(retry_seconds)


def keep_driver_env_in_the_driver(environ: dict[str, str] | os._Environ = os.environ) -> None:
    """Ray hands a submitted job's runtime env to every process of the job, through the job
    config its driver's `ray.init` reads. Strip the service's hand-over (`DriverEnv`: the job id,
    spec and claim) from it there: the job's workers never see the claim or the spec, and their
    env is the same for every job, so a warm cluster's prestarted processes fit them."""
    raw = environ.get(RAY_JOB_CONFIG)
    if not raw:
        return
    config = json.loads(raw)
    env_vars = (config.get("runtime_env") or {}).get("env_vars") or {}
    if any(key in env_vars for key in DriverEnv.KEYS):
        config["runtime_env"]["env_vars"] = {k: v for k, v in env_vars.items() if k not in DriverEnv.KEYS}
        environ[RAY_JOB_CONFIG] = json.dumps(config)


def main() -> int:
    """Spend the claim, then run the job the service handed over; its events go back to the
    service as they happen."""
    driver = DriverEnv.from_env()
    token = claim_event_token(driver)  # first: the claim is worth something until it is spent
    keep_driver_env_in_the_driver()
    # imported after the claim: loading TensorFlow takes seconds, a window for a claim's thief
    from slimray.runtime.trainer import run_job

    job_id = driver.job_id
    spec = parse_spec(driver.spec, f"job {job_id}")
    poster = EventPoster(driver.service_url, job_id, token)  # this job's events only
    try:  # a resubmitted driver (its predecessor lost) goes on from the newest readable checkpoint
        result = run_job(spec, overwrite=True, resume=driver.resume, on_event=poster)
    except Exception as err:
        poster("end", {"state": JobState.FAILED, "error": f"{type(err).__name__}: {err}"})
        poster.close(timeout=600)
        raise
    poster.close(timeout=600)
    print(f"job {job_id} {result.state}: {result.run_dir}")
    return 0 if result.state == JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())

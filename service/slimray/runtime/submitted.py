"""Entry point of a job driver submitted by the service: runs the job on the cluster and posts
progress back to the service, buffering and retrying while the service is unreachable."""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any

import httpx

from slimray.core.envvars import DriverEnv
from slimray.core.jobstate import JobState
from slimray.core.jsonsafe import finite
from slimray.core.spec import parse_spec
from slimray.runtime.trainer import run_job


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


def main() -> int:
    """Run the job the service handed over; its events go back to the service as they happen."""
    driver = DriverEnv.from_env()
    job_id = driver.job_id
    spec = parse_spec(driver.spec, f"job {job_id}")
    # a credential for this job's events only (never the service's admin token)
    poster = EventPoster(driver.service_url, job_id, driver.event_token)
    try:
        result = run_job(spec, overwrite=True, on_event=poster)
    except Exception as err:
        poster("end", {"state": JobState.FAILED, "error": f"{type(err).__name__}: {err}"})
        poster.close(timeout=600)
        raise
    poster.close(timeout=600)
    print(f"job {job_id} {result.state}: {result.run_dir}")
    return 0 if result.state == JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())

"""A small HTTP client for the job service (used by `slimray submit/status/cancel/logs`).
Every refusal becomes one ServiceError phrased for a person: the CLI prints it as one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from slimray.core.envvars import API_TOKEN, DB_PATH, SERVER

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ServiceError(Exception):
    """A refused or failed request, phrased for a person."""


def default_token() -> str | None:
    """SLIMRAY_API_TOKEN, else the token a local `slimray serve` keeps beside its store, else None."""
    token = os.environ.get(API_TOKEN)
    if token:
        return token
    db = Path(os.environ.get(DB_PATH, "slimray-state/jobs.db"))
    path = db.parent / "token"
    return path.read_text().strip() if path.is_file() else None


class ServiceClient:
    """The job service's /v1/jobs API: one method a request, JSON in and out."""

    def __init__(self, server: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.server = (server or os.environ.get(SERVER) or DEFAULT_SERVER).rstrip("/")
        token = token or default_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to one request; unreachable, 401, 404, 422 and other errors as ServiceError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ServiceError(f"cannot reach the slimray service at {self.server}: {err}") from err
        if response.status_code == 401:
            raise ServiceError(f"unauthorized: set {API_TOKEN} to the service's token")
        if response.status_code == 404:
            raise ServiceError(response.json().get("detail", "not found"))
        if response.status_code == 422:
            problems = response.json().get("detail", [])
            lines = [f"{'.'.join(str(p) for p in d['loc'][1:])}: {d['msg']}" for d in problems]
            raise ServiceError("the service refused the spec:\n  " + "\n  ".join(lines))
        if response.status_code >= 400:
            raise ServiceError(f"{response.status_code}: {response.json().get('detail', response.text)}")
        return response

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/jobs", json=spec).json()

    def get(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def list(self, state: str | None = None, limit: int = 50) -> dict[str, Any]:
        params = {"limit": limit, **({"state": state} if state else {})}
        return self._request("GET", "/v1/jobs", params=params).json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/jobs/{job_id}").json()

    def logs(self, job_id: str) -> str:
        return self._request("GET", f"/v1/jobs/{job_id}/logs").json()["logs"]

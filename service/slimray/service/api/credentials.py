"""Per-job driver credentials: an HMAC of the job id under the service's secret. A driver can
post events for its own job and nothing else; the admin token never leaves the service."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_PURPOSE = b"slimray job events v1:"


def job_event_token(secret: str, job_id: str) -> str:
    """The bearer token a job's driver presents to `POST /v1/jobs/{job_id}/events`."""
    return hmac.new(secret.encode(), _PURPOSE + job_id.encode(), hashlib.sha256).hexdigest()


def same(given: str, expected: str | None) -> bool:
    """Constant-time comparison; no expected token means nothing matches."""
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())

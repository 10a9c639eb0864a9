"""Per-job driver credentials: an HMAC of the job id under the service's secret. A driver can
post events for its own job and nothing else; the admin token never leaves the service. The
driver is not handed its token: Ray's job list shows every driver's environment (issue 23 L5), so
it gets a claim for its Ray submission, which it spends once, at start, for the token."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_PURPOSE = b"slimray job events v1:"
_CLAIM = b"slimray event-token claim v1:"


def job_event_token(secret: str, job_id: str) -> str:
    """The bearer token a job's driver presents to `POST /v1/jobs/{job_id}/events`."""
    return hmac.new(secret.encode(), _PURPOSE + job_id.encode(), hashlib.sha256).hexdigest()


def same(given: str, expected: str | None) -> bool:
    """Constant-time comparison; no expected token means nothing matches."""
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


def submission_claim(secret: str, ray_job_id: str) -> str:
    """What a driver of Ray submission `ray_job_id` exchanges once for its job's event token."""
    return hmac.new(secret.encode(), _CLAIM + ray_job_id.encode(), hashlib.sha256).hexdigest()

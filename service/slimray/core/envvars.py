"""Every environment variable slimray reads or hands on outside `Settings` (whose fields are
SLIMRAY_<FIELD>), declared once: the job driver's contract with the service, the client's, the
CLI's and the image's. A test finds any SLIMRAY_* name written elsewhere."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SETTINGS_FILE = "SLIMRAY_SETTINGS_FILE"  # the service's settings file (the chart renders one)
# a folder of secret files, each named as its variable (SLIMRAY_API_TOKEN); the chart mounts one
SECRETS_DIR = "SLIMRAY_SECRETS_DIR"
UMASK = "SLIMRAY_UMASK"  # octal; the image sets 0007 (group 0 may write what any UID wrote)
SERVER = "SLIMRAY_SERVER"  # the client's service URL
API_TOKEN = "SLIMRAY_API_TOKEN"  # the client's token (also Settings.api_token for the service)
DB_PATH = "SLIMRAY_DB_PATH"  # the client finds a local service's token beside its store
RAY_GCS_PORT = "SLIMRAY_RAY_GCS_PORT"  # `slimray serve --local`: its Ray head's GCS port
# the service's secrets: never passed on to a local Ray head it starts
SERVICE_SECRETS = ("SLIMRAY_API_TOKEN", "SLIMRAY_METRICS_TOKEN", "SLIMRAY_RAY_TOKEN")
RAY_AUTH_TOKEN = "RAY_AUTH_TOKEN"  # Ray's own token variable
RAY_AUTH_MODE = "RAY_AUTH_MODE"  # "token": a driver joining a token-auth cluster sends its token
# `slimray up`'s folder: the local session's record and Ray token (default ~/.slimray/session)
SESSION_DIR = "SLIMRAY_SESSION_DIR"
RAY_ADDRESS = "RAY_ADDRESS"  # set by Ray in a submitted job's driver
# set by Ray in a submitted job's driver: the job config (its runtime env) its ray.init reads
RAY_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's C++ logging: "2" keeps job logs readable
QUIET_TF = {TF_LOG_LEVEL: "2"}  # what every process slimray starts that may load TensorFlow gets
# Ray Train reads these from the driver's environment (the driver sets them for its controller)
RAY_TRAIN_START_TIMEOUT = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
RAY_TRAIN_POLL_INTERVAL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


@dataclass(frozen=True)
class DriverEnv:
    """What the service hands a submitted job's driver (`python -m slimray.runtime.submitted`)
    through Ray's runtime_env: written by `to_env`, read back by `from_env`."""

    job_id: str
    spec: dict[str, Any]
    service_url: str
    # spent once for the job's event token (POST /v1/jobs/{id}/claim): Ray's job list shows this
    event_claim: str | None = None
    resume: bool = False  # a resubmission after the driver was lost: go on from the last checkpoint

    JOB_ID = "SLIMRAY_JOB_ID"
    JOB_SPEC = "SLIMRAY_JOB_SPEC"
    SERVICE_URL = "SLIMRAY_SERVICE_URL"
    EVENT_CLAIM = "SLIMRAY_EVENT_CLAIM"
    RESUME = "SLIMRAY_RESUME"  # "1": resume
    KEYS = (JOB_ID, JOB_SPEC, SERVICE_URL, EVENT_CLAIM, RESUME)

    def to_env(self) -> dict[str, str]:
        env = {self.JOB_ID: self.job_id, self.JOB_SPEC: json.dumps(self.spec),
               self.SERVICE_URL: self.service_url}  # fmt: skip
        if self.event_claim is not None:
            env[self.EVENT_CLAIM] = self.event_claim
        if self.resume:
            env[self.RESUME] = "1"
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DriverEnv:
        return cls(env[cls.JOB_ID], json.loads(env[cls.JOB_SPEC]), env[cls.SERVICE_URL],
                   env.get(cls.EVENT_CLAIM), env.get(cls.RESUME) == "1")  # fmt: skip

    @classmethod
    def job_label(cls, default: str) -> str:
        """The service's job id in a driver it submitted, else `default` (a `slimray run`)."""
        return os.environ.get(cls.JOB_ID, default)

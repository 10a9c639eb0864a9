"""Service settings: one pydantic-settings class, environment prefix `SLIMRAY_`, built on demand.
A settings file (`SLIMRAY_SETTINGS_FILE`, JSON or YAML, the fields by name) sits under the
environment: the Helm chart renders one from its values. Secrets may come as files instead of
variables (`SLIMRAY_SECRETS_DIR`, one file per variable): the chart mounts its Secrets there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from slimray.core.envvars import RAY_AUTH_TOKEN
from slimray.core.envvars import SECRETS_DIR as SECRETS_DIR_ENV
from slimray.core.envvars import SETTINGS_FILE as SETTINGS_FILE_ENV
from slimray.core.uris import uri_parts_problem


class JobLimits(BaseModel):
    """What one submitted job may ask for; a spec beyond these gets 422 naming the field."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int = Field(16, ge=1, description="scaling.num_workers at most.")
    max_cpus_per_worker: float = Field(8.0, gt=0, description="scaling.cpus_per_worker at most.")
    max_gpus_per_worker: float = Field(1.0, ge=0, description="scaling.gpus_per_worker at most.")
    max_steps: int = Field(1_000_000, ge=1, description="Total optimizer steps at most.")
    max_epochs: int = Field(1000, ge=1, description="train.epochs at most.")
    max_batch_size: int = Field(8192, ge=1, description="train.batch_size at most.")
    max_sample_elements: int = Field(4 * 2**20, ge=1, description="Elements of one sample's shape.")
    max_classes: int = Field(100_000, ge=2, description="Synthetic data classes at most.")
    max_synthetic_samples: int = Field(1_000_000, ge=16, description="Synthetic data samples at most.")
    max_synthetic_bytes: int = Field(
        4 * 2**30, ge=1,
        description="Synthetic data's float32 arrays at most: (samples + classes) x sample elements x 4.",
    )  # fmt: skip
    max_batch_bytes: int = Field(
        2**30, ge=1, description="One batch's features at most: train.batch_size x sample elements x 4."
    )
    max_failures: int = Field(
        10, ge=-1,
        description="failure.max_failures at most; a spec's -1 (unlimited restarts) only if this is -1.",
    )  # fmt: skip


class Settings(BaseSettings):
    """Everything the job service reads from its environment (e.g. `SLIMRAY_API_TOKEN`)."""

    model_config = SettingsConfigDict(env_prefix="SLIMRAY_", env_file=None, extra="ignore",
                                      env_nested_delimiter="__")  # fmt: skip

    api_token: SecretStr | None = Field(None, description="Bearer token for mutations.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that may read per-job series at /metrics (or use api_token)."
    )
    public_reads: bool = Field(False, description="Serve GET /v1/jobs* and job metrics without a token.")
    api_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json (without a token).")
    db_path: Path = Field(Path("slimray-state/jobs.db"), description="SQLite job store (WAL).")
    ray_address: str = Field("http://127.0.0.1:8265", description="Ray job submission address.")
    ray_token: SecretStr | None = Field(
        None, description="Ray's auth token for its job server (default: $RAY_AUTH_TOKEN)."
    )
    ray_timeout_seconds: float = Field(5.0, gt=0, le=120, description="Timeout of every call to Ray.")
    service_url: str = Field(
        "http://127.0.0.1:8000", description="How job drivers reach this service to report."
    )
    driver_python: str = Field("python", description="Python that runs job drivers on Ray.")
    keep_warm: bool = Field(
        True, description="Keep worker processes with TensorFlow imported on Ray for the next job "
                          "(a `python -m slimray.runtime.warm` job, submitted whenever Ray comes up).",
    )  # fmt: skip
    runs_root: str | Path = Field(
        "slimray-state/runs",
        description="Run directories, one per job: a path, or a URI such as s3://b/runs.",
    )
    runs_shared: bool = Field(
        False, description="A local runs_root is a mount every Ray node shares (multi-node clusters)."
    )

    @field_validator("runs_root")
    @classmethod
    def _plain_runs_root(cls, root: str | Path) -> str | Path:
        """A URI root is scheme://bucket/path, as a spec's output.dir must be (issue 23 M1)."""
        problem = uri_parts_problem(str(root))
        if problem:
            raise ValueError(problem)
        return root

    data_roots: list[Path] = Field(default_factory=list, description="Where specs may read data.")
    model_roots: list[Path] = Field(default_factory=list, description="Where .keras models may be.")
    allowed_uri_prefixes: list[str] = Field(
        default_factory=list, description="Object-store URI prefixes specs may read, e.g. s3://b/."
    )
    allowed_model_modules: list[str] = Field(
        default_factory=list, description="Modules whose functions specs may call to build models."
    )
    reconcile_seconds: float = Field(5.0, gt=0, description="How often jobs are checked with Ray.")
    schedule_timeout_seconds: float = Field(
        600.0, gt=0, description="A job Ray has not started (PENDING) after this long fails."
    )
    metrics_job_limit: int = Field(200, ge=1, description="Most recent jobs exported to /metrics.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body accepted.")
    max_log_bytes: int = Field(1_000_000, ge=1024, description="Most bytes of a driver log returned.")
    min_free_bytes: int = Field(
        64 * 2**20, ge=0, description="Not ready (and no new jobs) below this free disk at db_path."
    )
    keep_alive_seconds: int = Field(
        75, ge=1, le=3600,
        description="Idle keep-alive connections close after this long: above clients' and ingresses' own.",
    )  # fmt: skip
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="A connection must send a whole request head within this long."
    )
    limit_concurrency: int = Field(
        256, ge=2, description="Open connections and requests at most; beyond it requests get 503."
    )
    limits: JobLimits = Field(default_factory=JobLimits)
    # Ray's own variable, read when the settings are built: not a field (the chart sets ray_token)
    _ray_auth_env: str | None = PrivateAttr(default_factory=lambda: os.environ.get(RAY_AUTH_TOKEN) or None)

    @property
    def ray_auth_token(self) -> str | None:
        """The token for Ray's job server: `ray_token`, else $RAY_AUTH_TOKEN as the settings were
        built (what Ray's own clients read), else none."""
        return self.ray_token.get_secret_value() if self.ray_token else self._ray_auth_env

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit overrides, then SLIMRAY_* variables, then secret files, then the settings file."""
        return init_settings, env_settings, secrets_dir_source(settings_cls), SettingsFileSource(settings_cls)


class SettingsFileError(ValueError):
    """The settings file is missing, unreadable, not a mapping, or names an unknown field."""


def secrets_dir_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    """pydantic's secrets-directory source over `SLIMRAY_SECRETS_DIR` (files named as the
    variables, e.g. SLIMRAY_API_TOKEN), read now; tokens in files stay out of /proc/*/environ."""
    path = os.environ.get(SECRETS_DIR_ENV)
    if path and not Path(path).is_dir():
        raise SettingsFileError(f"{SECRETS_DIR_ENV}={path!r}: not a directory")
    return SecretsSettingsSource(settings_cls, secrets_dir=path or None)


class SettingsFileSource(PydanticBaseSettingsSource):
    """The fields in the file `SLIMRAY_SETTINGS_FILE` names (JSON or YAML); unknown keys are
    refused by path, since a typo there would otherwise silently keep a default."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(SETTINGS_FILE_ENV)
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SettingsFileError(f"{SETTINGS_FILE_ENV}={path!r}: cannot read it: {err}") from err
        if not isinstance(data, dict):
            raise SettingsFileError(f"{SETTINGS_FILE_ENV}={path!r}: expected a mapping of settings, "
                                    f"got {type(data).__name__}")  # fmt: skip
        unknown = sorted(set(data) - set(self.settings_cls.model_fields))
        if unknown:
            raise SettingsFileError(f"{SETTINGS_FILE_ENV}={path!r}: unknown setting(s) {unknown}; "
                                    f"known: {sorted(self.settings_cls.model_fields)}")  # fmt: skip
        return data


def get_settings(**overrides) -> Settings:
    """Read the environment now (not at import), applying explicit overrides."""
    return Settings(**overrides)

"""Service settings: one pydantic-settings class, environment prefix `SLIMRAY_`, built on demand."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the job service reads from its environment (e.g. `SLIMRAY_API_TOKEN`)."""

    model_config = SettingsConfigDict(env_prefix="SLIMRAY_", env_file=None, extra="ignore")

    api_token: SecretStr | None = Field(None, description="Bearer token for mutations.")
    public_reads: bool = Field(False, description="Serve GET /v1/jobs* without a token.")
    db_path: Path = Field(Path("slimray-state/jobs.db"), description="SQLite job store (WAL).")
    ray_address: str = Field("http://127.0.0.1:8265", description="Ray job submission address.")
    service_url: str = Field(
        "http://127.0.0.1:8000", description="How job drivers reach this service to report."
    )
    driver_python: str = Field("python", description="Python that runs job drivers on Ray.")
    runs_root: Path = Field(Path("slimray-state/runs"), description="Run directories, one per job.")
    data_roots: list[Path] = Field(default_factory=list, description="Where specs may read data.")
    model_roots: list[Path] = Field(default_factory=list, description="Where .keras models may be.")
    allowed_uri_prefixes: list[str] = Field(
        default_factory=list, description="Object-store URI prefixes specs may read, e.g. s3://b/."
    )
    allowed_model_modules: list[str] = Field(
        default_factory=list, description="Modules whose functions specs may call to build models."
    )
    reconcile_seconds: float = Field(5.0, gt=0, description="How often jobs are checked with Ray.")
    metrics_job_limit: int = Field(200, ge=1, description="Most recent jobs exported to /metrics.")


def get_settings(**overrides) -> Settings:
    """Read the environment now (not at import), applying explicit overrides."""
    return Settings(**overrides)

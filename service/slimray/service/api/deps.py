"""Dependencies as `Annotated` aliases: the service context and its parts, and the bearer-token
checks (admin token for mutations, a job's own token for its driver's events, metrics token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from slimray.service.api.context import ServiceContext
from slimray.service.api.credentials import job_event_token, same
from slimray.service.executor import RayJobExecutor
from slimray.service.settings import Settings
from slimray.service.store import Store

_bearer = HTTPBearer(auto_error=False)
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A job id.")]


def context_of(request: Request) -> ServiceContext:
    """The app's context, which its lifespan put there: the one reader of `app.state`."""
    return request.app.state.context


# async, like every dependency of the context: resolved on the event loop, so health checks
# answer while a hung Ray holds every worker thread
async def get_context(request: Request) -> ServiceContext:
    return context_of(request)


ContextDep = Annotated[ServiceContext, Depends(get_context)]


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_store(context: ContextDep) -> Store:
    return context.store


async def get_executor(context: ContextDep) -> RayJobExecutor:
    return context.executor


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ExecutorDep = Annotated[RayJobExecutor, Depends(get_executor)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _given(credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials if credentials else ""


def _secret(value) -> str | None:
    return value.get_secret_value() if value else None


def _refuse() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_token(settings: SettingsDep, credentials: Credentials) -> None:
    if not same(_given(credentials), _secret(settings.api_token)):
        raise _refuse()


def require_reader(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.public_reads:
        require_token(settings, credentials)


def require_job_driver(job_id: JobId, settings: SettingsDep, credentials: Credentials) -> None:
    """The admin token, or the token derived for this job only (what its driver holds)."""
    admin = _secret(settings.api_token)
    given = _given(credentials)
    scoped = job_event_token(admin, job_id) if admin else None
    if not (same(given, admin) or same(given, scoped)):
        raise _refuse()


def is_admin(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """The admin token was given (e.g. for /readyz's detail)."""
    return same(_given(credentials), _secret(settings.api_token))


def job_metrics_allowed(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Per-job series only for public reads, the admin token or the metrics token."""
    given = _given(credentials)
    return (
        settings.public_reads
        or same(given, _secret(settings.api_token))
        or same(given, _secret(settings.metrics_token))
    )


WriteAccess = Depends(require_token)
ReadAccess = Depends(require_reader)
DriverAccess = Depends(require_job_driver)

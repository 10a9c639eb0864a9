"""Dependencies as `Annotated` aliases: settings, store, executor, and the bearer-token checks."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from slimray.executor import RayJobExecutor
from slimray.settings import Settings
from slimray.store import Store

_bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_executor(request: Request) -> RayJobExecutor:
    return request.app.state.executor


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ExecutorDep = Annotated[RayJobExecutor, Depends(get_executor)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    given = credentials.credentials if credentials else ""
    if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_token(settings: SettingsDep, credentials: Credentials) -> None:
    _check(settings, credentials)


def require_reader(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.public_reads:
        _check(settings, credentials)


WriteAccess = Depends(require_token)
ReadAccess = Depends(require_reader)

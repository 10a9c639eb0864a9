"""Every exception a request may end in, and the response it becomes: one table, one handler per
type, installed in one place. Bodies are `{"detail": ...}`: words, or FastAPI's list of field errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from slimray.core.errors import BackendUnavailableError
from slimray.core.jobstate import InvalidTransition
from slimray.core.jsonsafe import finite
from slimray.service.api.claims import ClaimInvalid, ClaimSpent
from slimray.service.api.events import EventLimitReached, EventRefused
from slimray.service.api.policy import PolicyError, Problem
from slimray.service.executor import RayUnavailable
from slimray.service.store import StoreUnavailable, UnknownJob

Render = Callable[[Any], Any]


def field_errors(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """Refusals of fields of the request body, in the shape of FastAPI's own 422s."""
    return [{"loc": ["body", *loc], "msg": msg, "type": "policy_error"} for loc, msg in problems]


def _backend_unavailable(err: BackendUnavailableError) -> list[dict[str, Any]]:
    return field_errors([(err.field, str(err))])


def _invalid_request(err: RequestValidationError) -> list[dict[str, Any]]:
    # the default handler echoes the input, and a NaN there would break strict JSON
    return finite(jsonable_encoder(err.errors()))


HANDLERS: dict[type[Exception], tuple[int, Render]] = {
    RequestValidationError: (status.HTTP_422_UNPROCESSABLE_CONTENT, _invalid_request),
    PolicyError: (status.HTTP_422_UNPROCESSABLE_CONTENT, lambda err: field_errors(err.problems)),
    BackendUnavailableError: (status.HTTP_422_UNPROCESSABLE_CONTENT, _backend_unavailable),
    UnknownJob: (status.HTTP_404_NOT_FOUND, lambda err: f"no job {err.args[0]!r}"),
    InvalidTransition: (status.HTTP_409_CONFLICT, str),
    EventRefused: (status.HTTP_409_CONFLICT, str),
    EventLimitReached: (
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        lambda err: field_errors([(err.field, str(err))]),
    ),
    ClaimInvalid: (status.HTTP_401_UNAUTHORIZED, str),
    ClaimSpent: (status.HTTP_409_CONFLICT, str),
    StoreUnavailable: (status.HTTP_503_SERVICE_UNAVAILABLE, str),
    sqlite3.Error: (status.HTTP_503_SERVICE_UNAVAILABLE, lambda err: f"the job store failed: {err}"),
    RayUnavailable: (status.HTTP_503_SERVICE_UNAVAILABLE, lambda err: f"Ray is unavailable: {err}"),
}


def _handler(code: int, render: Render):
    # async: answered on the event loop, never waiting for a worker thread a hung Ray holds
    async def handle(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": render(err)}, status_code=code)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    """Register each entry of `HANDLERS` on the app."""
    for error_type, (code, render) in HANDLERS.items():
        app.add_exception_handler(error_type, _handler(code, render))

"""The error table: each exception a request may end in has one status and one body, registered
once; and the app's parts reach routes only through `api.deps` (nothing else reads app.state)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from slimray.core.errors import BackendUnavailableError
from slimray.core.jobstate import InvalidTransition
from slimray.service.api.claims import ClaimInvalid, ClaimSpent
from slimray.service.api.errors import HANDLERS, install_error_handlers
from slimray.service.api.events import EventLimitReached, EventRefused
from slimray.service.api.policy import PolicyError
from slimray.service.executor import RayUnavailable
from slimray.service.store import StoreUnavailable, UnknownJob

SERVICE = Path(__file__).resolve().parents[3] / "service" / "slimray" / "service"
FIELD = {"loc": ["body", "backend"], "msg": "backend 'hvd' cannot run on this Ray cluster: gone",
         "type": "policy_error"}  # fmt: skip
CASES = [
    (RequestValidationError([{"loc": ("body", "x"), "msg": "bad", "type": "t", "input": float("nan")}]),
     422, [{"loc": ["body", "x"], "msg": "bad", "type": "t", "input": None}]),
    (PolicyError([(("data", "source"), "outside")]), 422,
     [{"loc": ["body", "data", "source"], "msg": "outside", "type": "policy_error"}]),
    (BackendUnavailableError("hvd", "gone"), 422, [FIELD]),
    (UnknownJob("abc"), 404, "no job 'abc'"),
    (InvalidTransition("job a is already succeeded"), 409, "job a is already succeeded"),
    (EventRefused("job a is failed"), 409, "job a is failed"),
    (EventLimitReached("job a has its 11 prune events"), 422,
     [{"loc": ["body", "data", "event", "step"], "msg": "job a has its 11 prune events",
       "type": "policy_error"}]),
    (ClaimInvalid("not the claim"), 401, "not the claim"),
    (ClaimSpent("already exchanged"), 409, "already exchanged"),
    (StoreUnavailable("the job store is gone"), 503, "the job store is gone"),
    (sqlite3.OperationalError("disk I/O error"), 503, "the job store failed: disk I/O error"),
    (RayUnavailable("logs failed"), 503, "Ray is unavailable: logs failed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{index}")
    def raise_case(index: int):
        raise CASES[index][0]

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("index", range(len(CASES)), ids=[type(c[0]).__name__ for c in CASES])
def test_each_exception_has_its_status_and_body(client, index):
    _, code, detail = CASES[index]
    response = client.get(f"/raise/{index}")
    assert (response.status_code, response.json()) == (code, {"detail": detail})


def test_every_entry_of_the_table_is_exercised_and_registered_once():
    assert {type(c[0]) for c in CASES} - {sqlite3.OperationalError} | {sqlite3.Error} == set(HANDLERS)
    app = FastAPI()
    install_error_handlers(app)
    assert set(HANDLERS) <= set(app.exception_handlers)


def test_only_the_dependencies_read_app_state():
    """The lifespan puts the context on app.state once (main); api.deps alone reads it."""
    uses = {
        f"{path.relative_to(SERVICE)}:{n}"
        for path in SERVICE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bapp\.state\b", line) and not line.lstrip().startswith(("#", '"'))
    }
    assert {use.split(":")[0] for use in uses} == {"api/deps.py", "api/main.py"}, uses
    main = (SERVICE / "api" / "main.py").read_text()
    assert set(re.findall(r"app\.state\.\w+", main)) == {"app.state.context"}

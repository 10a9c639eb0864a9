"""Schemathesis against the real service's /openapi.json (real uvicorn, Ray down): a bounded
number of generated requests per operation; no 5xx and every documented response conforms."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from slimray.service.settings import get_settings
from tests.service_helpers import free_port, running_service

TOKEN = "fuzz-token"
CASES_PER_OPERATION = 40  # x 9 operations; `make test` stays bounded
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _fuzz(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=CASES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

    run()


def test_no_5xx_and_documented_responses_conform(tmp_path):
    settings_ = get_settings(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                             data_roots=[tmp_path], ray_address=f"http://127.0.0.1:{free_port()}",
                             reconcile_seconds=0.5, api_docs=True)  # fmt: skip
    with running_service(settings_) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8, [op.label for op in operations]
        for operation in operations:
            _fuzz(operation)

"""The chart with ci/object-store-values.yaml (run directories on an S3 API, endpoint and keys
from the Secret `slimray-s3`, no runs volume; the admin token from a Secret the operator keeps,
`auth.existingSecret`, so KubeRay generates only the Ray token), started as Kubernetes and
KubeRay would: the service reads its admin token from the mounted file, `helm test` passes with
it, a job submitted to the service runs on its Ray pods and its run lands in the bucket (moto
here; the endpoint is the one test value set over the ci file's, the Secrets the test's)."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.charts.k8s_checks import CHART, helm_template
from tests.deploy.chart_stack import TINY_SPEC, chart_stack
from tests.s3_helpers import CREDENTIALS, moto_server

pytestmark = pytest.mark.timeout(900)
VALUES = CHART / "ci" / "object-store-values.yaml"


def test_a_job_through_the_service_writes_its_run_to_the_bucket(image, tmp_path):
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["objectStore"]
    values = {**defaults, **yaml.safe_load(VALUES.read_text())["objectStore"]}
    runs = urlsplit(values["runsRoot"])
    with moto_server(tmp_path) as s3:
        sets = (f"objectStore.endpoint={s3.endpoint}", "auth.existingSecret=ops-auth")
        docs = helm_template(VALUES, sets=sets)
        assert not [
            d for d in docs if d["kind"] == "PersistentVolumeClaim" and "runs" in d["metadata"]["name"]
        ]
        s3.client().create_bucket(Bucket=runs.netloc)
        keys = {
            values["accessKeyIdKey"]: CREDENTIALS["AWS_ACCESS_KEY_ID"],
            values["secretAccessKeyKey"]: CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
        assert not [d for d in docs if d["kind"] == "Secret"]  # the tokens are the operator's
        admin = secrets.token_hex(24)
        given = {values["credentialsSecret"]: keys, "ops-auth": {"api-token": admin}}
        with chart_stack(docs, tmp_path, secrets=given) as stack:
            assert stack.token == admin  # read from the file SLIMRAY_SECRETS_DIR names
            assert httpx.get(f"{stack.url}/v1/jobs", headers=stack.auth, timeout=10).status_code == 200
            stack.helm_test()
            job = stack.run_job(TINY_SPEC)
            assert job["state"] == "succeeded", stack.failed(job)
            prefix = f"{runs.path.strip('/')}/{job['id']}/"
            names = [k.removeprefix(prefix) for k in s3.keys(runs.netloc, prefix)]
            report = json.loads(
                s3.client().get_object(Bucket=runs.netloc, Key=prefix + "report.json")["Body"].read()
            )
    assert report["state"] == "succeeded", report
    assert "model.keras" in names and any(n.startswith("checkpoints/") for n in names), names

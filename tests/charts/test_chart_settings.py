"""The service starts with what the chart renders: for the default values and every ci/ file, the
api container's env and settings file load into Settings, the app answers, and a job passes the
spec policy on the Ray cluster the chart creates. The values' settings are Settings's fields."""

from __future__ import annotations

import os

import httpx
import pytest
import yaml

from slimray.cli.serve import service_token
from slimray.core.spec import parse_spec
from slimray.service.api.policy import enforce
from slimray.service.settings import get_settings
from tests.charts.chart_settings import CHART_DECIDED, camel, settings_defaults, settings_values_schema
from tests.charts.k8s_checks import CHART, ROOT, helm_template
from tests.charts.pod_env import container_view
from tests.charts.test_chart import VALUES
from tests.service_helpers import running_service

EXTERNAL_CLUSTER_NODES = (1, 2, 8)  # ray.address: a cluster the chart does not shape


def _api_pod(docs):
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]


def cluster_shapes(docs) -> tuple[int, ...]:
    """Node counts of the chart's RayCluster: head plus the workers at start and at most."""
    cluster = next((d for d in docs if d["kind"] == "RayCluster"), None)
    if cluster is None:
        return EXTERNAL_CLUSTER_NODES
    groups = cluster["spec"]["workerGroupSpecs"]
    return (1 + sum(g["replicas"] for g in groups), 1 + sum(g["maxReplicas"] for g in groups))


@pytest.fixture
def chart_settings(request, tmp_path, monkeypatch):
    """(docs, view, Settings) of the api container for one values set, env as the pod has it."""
    docs = helm_template(*VALUES[request.param])
    view = container_view(_api_pod(docs), docs, tmp_path)
    for name in [n for n in os.environ if n.startswith(("SLIMRAY_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in view.env.items():
        monkeypatch.setenv(name, value)
    return docs, view, get_settings()


def _values(name: str) -> dict:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in VALUES[name]:
        override = yaml.safe_load(path.read_text())
        values["settings"] = {**values["settings"], **override.get("settings", {})}
        values["objectStore"] = {**values["objectStore"], **override.get("objectStore", {})}
    return values


@pytest.mark.parametrize("chart_settings", list(VALUES), indirect=True)
def test_settings_load_every_value_as_the_values_give_it(chart_settings, request):
    _, view, settings = chart_settings
    name = request.node.callspec.params["chart_settings"]
    values = _values(name)
    loaded = settings.model_dump(mode="json")
    for key, field in ((camel(k), k) for k in loaded if k not in CHART_DECIDED and k != "limits"):
        expected = values["settings"][key]
        if isinstance(expected, list):
            expected = [view.local(v) for v in expected]
        assert loaded[field] == expected, field
    assert settings.limits.model_dump() == {k: values["settings"]["limits"][camel(k)]
                                            for k in settings.limits.model_dump()}  # fmt: skip
    assert type(settings.limits.max_steps) is int and settings.limits.max_steps == 1_000_000
    # runs_shared follows the chart's storage: the runs claim is mounted on every pod
    assert settings.runs_shared is (not values["objectStore"]["enabled"])
    assert settings.ray_token is not None
    # the admin token from a Secret when one is given, else the service keeps its own (below)
    assert (settings.api_token is not None) is view.has_secret_file("SLIMRAY_API_TOKEN")
    assert not {"SLIMRAY_API_TOKEN", "SLIMRAY_METRICS_TOKEN", "SLIMRAY_RAY_TOKEN"} & set(view.env)


@pytest.mark.parametrize("chart_settings", list(VALUES), indirect=True)
def test_the_service_starts_and_a_job_passes_the_policy_on_the_charts_cluster(chart_settings):
    docs, _, settings = chart_settings
    spec = parse_spec(yaml.safe_load((ROOT / "examples" / "mnist.yaml").read_text()), "mnist")
    for nodes in cluster_shapes(docs):
        job = enforce(spec, settings, "job-1", cluster_nodes=nodes)
        assert job.output.dir.endswith("/job-1") and job.output.shared is settings.runs_shared
    settings = service_token(settings)  # as `slimray serve` does: SLIMRAY_API_TOKEN, else its own
    token = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    with running_service(settings) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{url}/readyz", headers=token, timeout=10)
        assert ready.status_code == 200 and ready.json()["store"] is True, ready.text
        body = spec.model_dump(mode="json")
        created = httpx.post(f"{url}/v1/jobs", json=body, headers=token, timeout=30)
        assert created.status_code == 201, created.text


def test_the_values_settings_are_the_settings_fields_typed_and_defaulted_alike():
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert schema["properties"]["settings"] == settings_values_schema()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["settings"] == settings_defaults()


def test_a_settings_value_the_service_does_not_know_is_refused_by_the_chart():
    import subprocess

    from tests.conftest import need_tool

    proc = subprocess.run([need_tool("helm"), "template", "r", str(CHART), "--set", "settings.maxStep=3"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "maxStep" in proc.stderr

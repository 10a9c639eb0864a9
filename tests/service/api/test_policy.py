"""What a spec may touch and ask for (issue 8, items 4, 5, 10 and 11), checked without HTTP."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from slimray.core.errors import OutputLocationError
from slimray.core.spec import parse_spec
from slimray.service.api.main import create_app
from slimray.service.api.policy import PolicyError, enforce, output_location_error, output_problems
from slimray.service.settings import JobLimits, get_settings
from tests.core.test_spec import CARRIED
from tests.service_helpers import free_port

BASE = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 10}}


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "outside").mkdir()
    return get_settings(
        api_token="t", db_path=tmp_path / "j.db", runs_root=tmp_path / "runs",
        data_roots=[tmp_path / "data"], model_roots=[tmp_path / "models"],
        allowed_uri_prefixes=["s3://bucket/train/", "s3://data"],
        allowed_model_modules=["tests.service.api.allowed_models.nets"],
        limits=JobLimits(max_workers=4, max_steps=1000, max_batch_size=256, max_classes=100,
                         max_sample_elements=10_000, max_cpus_per_worker=2),
    )  # fmt: skip


def _problems(settings, **overrides) -> list[tuple[tuple[str, ...], str]]:
    spec = parse_spec({**BASE, **overrides})
    with pytest.raises(PolicyError) as err:
        enforce(spec, settings, "job1")
    return err.value.problems


def _accepted(settings, **overrides):
    return enforce(parse_spec({**BASE, **overrides}), settings, "job1")


@pytest.mark.parametrize("source", [
    "s3://bucket-evil/train/x.npz",  # a longer bucket name under the string prefix s3://bucket
    "s3://bucket/train/../../other/x.npz",
    "s3://bucket/train/%2e%2e/secret/x.npz",
    "s3://bucket/trainx/x.npz",  # not a path segment of the prefix
    "s3://database/x.npz",  # prefix s3://data is bucket "data", not "data*"
    "gs://bucket/train/x.npz",
    "s3://[bad/x.npz",
    "file:///allowed/../outside/x.npz",
])  # fmt: skip
def test_uris_outside_the_allowed_prefixes_are_refused(settings, source):
    """Regression: the allow-list was a plain string prefix."""
    problems = _problems(settings, data={"source": source})
    assert problems[0][0] == ("data", "source")
    assert source.removeprefix("file://")[:12] in problems[0][1]


def test_keras_models_from_uris_follow_the_same_prefixes(settings):
    assert _accepted(settings, model={"source": "s3://bucket/train/m.keras"}).model.source == (
        "s3://bucket/train/m.keras"
    )
    for source in (
        "s3://bucket/other/m.keras",
        "s3://bucket/train/../x/m.keras",
        "gs://bucket/train/m.keras",
    ):
        problems = _problems(settings, model={"source": source})
        assert problems[0][0] == ("model", "source") and source[:12] in problems[0][1]


@pytest.mark.parametrize("source", ["s3://bucket/train/x.npz", "s3://bucket/train/a/b.parquet",
                                    "s3://data/x.npz"])  # fmt: skip
def test_uris_under_the_prefixes_are_accepted(settings, source):
    assert _accepted(settings, data={"source": source}).data.source == source


def test_a_symlink_inside_a_data_directory_pointing_outside_is_refused(settings, tmp_path):
    """Regression: a directory source was checked, the links inside it were not."""
    table = tmp_path / "data" / "table"
    table.mkdir()
    (tmp_path / "outside" / "secret.parquet").write_text("x")
    os.symlink(tmp_path / "outside" / "secret.parquet", table / "part-0.parquet")
    problems = _problems(settings, data={"source": "table", "format": "parquet"})
    assert problems[0][0] == ("data", "source") and "part-0.parquet" in problems[0][1]
    os.unlink(table / "part-0.parquet")
    (table / "part-0.parquet").write_text("x")
    assert _accepted(settings, data={"source": "table", "format": "parquet"}).data.source == str(table)


def test_a_file_uri_is_held_to_the_data_roots(settings, tmp_path):
    (tmp_path / "data" / "x.npz").write_text("x")
    spec = _accepted(settings, data={"source": f"file://{tmp_path}/data/x.npz"})
    assert spec.data.source == str(tmp_path / "data" / "x.npz")
    problems = _problems(settings, data={"source": f"file://{tmp_path}/outside/x.npz"})
    assert "outside the allowed roots" in problems[0][1]


@pytest.mark.parametrize(("source", "reason"), [
    ("tests.service.api.allowed_models.nets:run", "not a function defined"),  # imported subprocess.run
    ("tests.service.api.allowed_models.nets:_helper", "not a public function"),
    ("tests.service.api.allowed_models.nets:shadowed", "not a function defined"),
    ("tests.service.api.allowed_models.nets:Builder", "not a function defined"),
    ("tests.service.api.allowed_models.nets:missing", "not a function defined"),
    ("os:system", "not in allowed_model_modules"),
])  # fmt: skip
def test_only_public_functions_defined_in_an_allowed_module_may_be_called(settings, source, reason):
    """Regression: any attribute of an allowed module was callable with caller-chosen kwargs."""
    problems = _problems(settings, model={"source": source})
    assert problems[0][0] == ("model", "source") and reason in problems[0][1]


def test_a_public_builder_of_an_allowed_module_is_accepted(settings):
    spec = _accepted(settings, model={"source": "tests.service.api.allowed_models.nets:build"})
    assert spec.model.source == "tests.service.api.allowed_models.nets:build"


def test_the_runtime_also_refuses_imported_callables():
    """Defence in depth: the driver checks again before calling anything."""
    from slimray.runtime.modeling import _model_function

    assert _model_function("tests.service.api.allowed_models.nets:build").__name__ == "build"
    with pytest.raises(ValueError, match="not a public function defined"):
        _model_function("tests.service.api.allowed_models.nets:run")


@pytest.mark.parametrize(("section", "value", "loc"), [
    ("scaling", {"num_workers": 1024}, ("scaling", "num_workers")),
    ("scaling", {"cpus_per_worker": 16}, ("scaling", "cpus_per_worker")),
    ("train", {"steps": 10**6}, ("train", "steps")),
    ("train", {"steps": 10, "batch_size": 10**6}, ("train", "batch_size")),
    ("data", {"source": "synthetic", "synthetic": {"num_classes": 10**6}},
     ("data", "synthetic", "num_classes")),
    ("data", {"source": "mnist", "shape": [1000, 1000]}, ("data", "shape")),
])  # fmt: skip
def test_specs_beyond_the_service_limits_are_refused_naming_the_field(settings, section, value, loc):
    """Regression: specs that could never run were accepted and sat in Ray forever."""
    problems = _problems(settings, **{section: value})
    assert problems[0][0] == loc and "exceeds this service's limit" in problems[0][1]


def test_data_bytes_are_bounded_as_products_not_only_field_by_field(settings):
    """Regression (issue 23 M5): every factor within its limit, the product 16 TiB."""
    limits = JobLimits(max_synthetic_bytes=10_000_000, max_batch_bytes=1_000_000)
    bounded = settings.model_copy(update={"limits": limits})
    synthetic = {"source": "synthetic", "synthetic": {"samples": 10_000, "shape": [256], "num_classes": 10}}
    problems = _problems(bounded, data=synthetic)  # (10000 + 10) x 256 x 4 = 10,250,240
    assert problems == [(("data", "synthetic"), "(samples 10000 + num_classes 10) x 256 elements "
                         "(shape [256]) x 4 bytes = 10250240 bytes exceeds this service's limit of 10000000"
                         " (max_synthetic_bytes)")]  # fmt: skip
    assert _accepted(bounded, data={**synthetic, "synthetic": {"samples": 9_000, "shape": [256]}})
    problems = _problems(bounded, data={"source": "mnist", "shape": [28, 28, 1]},
                         train={"steps": 10, "batch_size": 512})  # fmt: skip
    assert problems[0][0] == ("train", "batch_size") and "512 x 784" in problems[0][1]
    assert "1605632 bytes per batch" in problems[0][1] and "limit of 1000000" in problems[0][1]
    assert _accepted(bounded, data={"source": "mnist", "shape": [28, 28, 1]},
                     train={"steps": 10, "batch_size": 10**6 // 784 // 4})  # fmt: skip


@pytest.mark.parametrize(("limit", "asked", "refused"), [
    (10, -1, True), (10, 11, True), (10, 10**9, True), (10, 10, False), (10, 0, False),
    (-1, -1, False), (-1, 10**9, False), (0, 1, True),
])  # fmt: skip
def test_restarts_are_bounded_and_unlimited_only_if_the_operator_allows(settings, limit, asked, refused):
    """Regression (issue 23 L7): -1 and 10^9 restarts were accepted; nothing bounded a crash loop."""
    bounded = settings.model_copy(update={"limits": JobLimits(max_failures=limit)})
    if refused:
        problems = _problems(bounded, failure={"max_failures": asked})
        assert problems[0][0] == ("failure", "max_failures") and f"limit of {limit}" in problems[0][1]
        assert str(asked) in problems[0][1]
    else:
        assert _accepted(bounded, failure={"max_failures": asked}).failure.max_failures == asked


def test_runs_on_an_object_store_get_a_uri_per_job(settings):
    on_s3 = settings.model_copy(update={"runs_root": "s3://ml-runs/slimray/", "runs_shared": False})
    assert _accepted(on_s3).output.dir == "s3://ml-runs/slimray/job1"
    shared = settings.model_copy(update={"runs_shared": True})
    spec = _accepted(shared)
    assert spec.output.shared and spec.output.dir.endswith("/runs/job1")


def test_a_local_runs_root_is_refused_on_a_multi_node_cluster(settings):
    spec = parse_spec(BASE)
    with pytest.raises(PolicyError) as err:
        enforce(spec, settings, "job1", cluster_nodes=3)
    [(loc, message)] = err.value.problems
    assert loc == ("output", "dir") and "3 nodes" in message and "SLIMRAY_RUNS_ROOT" in message
    assert str(settings.runs_root) in message and "SLIMRAY_RUNS_SHARED=true" in message
    assert enforce(spec, settings, "job1", cluster_nodes=1).output.dir.endswith("job1")
    assert enforce(spec, settings, "job1", cluster_nodes=None)  # not probed yet: the driver checks
    shared = settings.model_copy(update={"runs_shared": True})
    on_s3 = settings.model_copy(update={"runs_root": "s3://bucket/runs"})
    assert output_problems(shared, 3) == [] and output_problems(on_s3, 3) == []
    error = output_location_error(settings, 3)  # the type the driver raises for the same condition
    assert isinstance(error, OutputLocationError) and (error.field, str(error)) == (loc, message)
    assert enforce(spec, on_s3, "job1", cluster_nodes=3).output.dir == "s3://bucket/runs/job1"


@pytest.mark.parametrize("part", list(CARRIED))
@pytest.mark.parametrize("field", ["data", "model"])
def test_allowed_uris_carrying_a_query_fragment_userinfo_or_port_get_422(settings, field, part):
    """Regression (issue 23 M1): `s3://allowed/x.parquet?endpoint_override=host:port&scheme=http`
    passed the allowlist (201), and the driver sent signed requests to that host."""
    uri, named = CARRIED[part]
    if field == "model":
        uri = uri.replace("x.parquet", "m") + ("&region=a.keras" if part == "query" else ".keras")
    spec = {**BASE, field: {"source": uri}}
    served = settings.model_copy(update={"ray_address": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(served)) as api:
        response = api.post("/v1/jobs", json=spec, headers={"Authorization": "Bearer t"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field, "source"] and named in detail["msg"] and uri in detail["msg"]
        assert api.get("/v1/jobs", headers={"Authorization": "Bearer t"}).json()["total"] == 0


@pytest.mark.parametrize("part", list(CARRIED))
def test_the_allowlist_itself_never_admits_a_uri_carrying_more_than_bucket_and_path(settings, part):
    """The policy refuses these too, for a spec built without `parse_spec` (model_construct)."""
    uri, named = CARRIED[part]
    spec = parse_spec(BASE)
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"source": uri})})
    with pytest.raises(PolicyError) as err:
        enforce(spec, settings, "job1")
    assert err.value.problems[0][0] == ("data", "source") and named in err.value.problems[0][1]


def test_a_worker_range_is_limited_by_its_max_with_a_422(settings):
    """Issue 23 point 4: `scaling.num_workers: {min, max}`; the limit check compared it as an int
    (a TypeError, a 500). Its max is what the cluster may be asked for."""
    assert _accepted(settings, scaling={"num_workers": {"min": 2, "max": 4}}).scaling.max_workers == 4
    over = {**BASE, "scaling": {"num_workers": {"min": 2, "max": 8}}}
    served = settings.model_copy(update={"ray_address": f"http://127.0.0.1:{free_port()}"})
    with TestClient(create_app(served)) as api:
        response = api.post("/v1/jobs", json=over, headers={"Authorization": "Bearer t"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "scaling", "num_workers"]
        assert detail["msg"].startswith("8 exceeds this service's limit of 4"), detail

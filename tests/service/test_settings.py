"""The service's settings: a settings file (what the chart renders) under SLIMRAY_* variables,
unknown keys refused by name, and `slimray serve` exiting with one line on a bad file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from slimray.service.settings import SettingsFileError, get_settings


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    for name in ("SLIMRAY_LIMITS__MAX_WORKERS", "SLIMRAY_PUBLIC_READS", "SLIMRAY_RUNS_SHARED"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "settings.json"
    monkeypatch.setenv("SLIMRAY_SETTINGS_FILE", str(path))
    return path


def test_the_file_sets_fields_and_the_environment_overrides_it_field_by_field(settings_file, monkeypatch):
    settings_file.write_text(json.dumps({"limits": {"max_steps": 1000000, "max_workers": 3},
                                         "runs_shared": True, "public_reads": True}))  # fmt: skip
    monkeypatch.setenv("SLIMRAY_LIMITS__MAX_WORKERS", "5")
    settings = get_settings()
    assert settings.limits.max_steps == 1_000_000 and settings.limits.max_workers == 5
    assert settings.runs_shared is True and settings.public_reads is True


def test_yaml_works_too(settings_file):
    settings_file.write_text("limits: {max_batch_size: 64}\nreconcile_seconds: 2\n")
    settings = get_settings()
    assert settings.limits.max_batch_size == 64 and settings.reconcile_seconds == 2


@pytest.mark.parametrize(("text", "message"), [
    ('{"max_stepz": 1}', "unknown setting(s) ['max_stepz']"),
    ("[1, 2]", "expected a mapping of settings, got list"),
    ("{not json: [", "cannot read it"),
])  # fmt: skip
def test_a_bad_file_is_refused_naming_the_file_and_the_key(settings_file, text, message):
    settings_file.write_text(text)
    with pytest.raises(SettingsFileError) as err:
        get_settings()
    assert message in str(err.value) and str(settings_file) in str(err.value)


def test_an_unknown_limit_is_refused_by_its_path(settings_file):
    settings_file.write_text('{"limits": {"max_stepz": 1}}')
    with pytest.raises(ValueError, match=r"limits.max_stepz"):
        get_settings()


def test_a_missing_file_is_refused(settings_file):
    with pytest.raises(SettingsFileError, match="cannot read it"):
        get_settings()


def test_serve_exits_2_with_one_line_on_a_bad_settings_file(settings_file, tmp_path):
    settings_file.write_text('{"bogus": 1}')
    proc = subprocess.run([sys.executable, "-m", "slimray.cli", "serve", "--port", "1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown setting(s) ['bogus']" in proc.stdout and "Traceback" not in proc.stderr


def test_the_ray_token_is_ray_token_else_rays_own_variable(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-ray")
    monkeypatch.delenv("SLIMRAY_RAY_TOKEN", raising=False)
    assert get_settings().ray_auth_token == "from-ray"
    assert get_settings(ray_token="explicit").ray_auth_token == "explicit"
    monkeypatch.setenv("SLIMRAY_RAY_TOKEN", "ours")
    assert get_settings().ray_auth_token == "ours"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.delenv("SLIMRAY_RAY_TOKEN")
    assert get_settings().ray_auth_token is None


@pytest.mark.parametrize("root", ["s3://b/runs?endpoint_override=127.0.0.1:9", "s3://b:9/runs",
                                  "s3://key@b/runs", "s3://b/runs#x"])  # fmt: skip
def test_a_runs_root_uri_carrying_more_than_bucket_and_path_is_refused_at_start(root):
    """Regression (issue 23 M1): the spec refuses such an output.dir; the operator's root (each
    job's output.dir) answered every POST with a 500 instead of failing at start-up."""
    with pytest.raises(ValueError, match=r"runs_root") as err:
        get_settings(api_token="t", runs_root=root)
    assert root in str(err.value)


def test_local_runs_roots_keep_any_character(tmp_path):
    assert get_settings(api_token="t", runs_root=tmp_path / "a#b?c").runs_root == tmp_path / "a#b?c"


def test_tokens_come_from_files_in_the_secrets_dir_under_the_environment(tmp_path, monkeypatch):
    """Issue 23 L8: the chart mounts its Secrets as files, so no token sits in the environ."""
    for name in ("SLIMRAY_API_TOKEN", "SLIMRAY_METRICS_TOKEN", "SLIMRAY_RAY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "SLIMRAY_API_TOKEN").write_text("admin-from-a-file\n")
    (tmp_path / "SLIMRAY_RAY_TOKEN").write_text("ray-from-a-file")
    monkeypatch.setenv("SLIMRAY_SECRETS_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.api_token.get_secret_value() == "admin-from-a-file"
    assert settings.ray_auth_token == "ray-from-a-file" and settings.metrics_token is None
    monkeypatch.setenv("SLIMRAY_API_TOKEN", "admin-from-the-env")
    assert get_settings().api_token.get_secret_value() == "admin-from-the-env"


def test_a_secrets_dir_that_is_not_a_folder_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMRAY_SECRETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SettingsFileError, match="SLIMRAY_SECRETS_DIR=.*nowhere.*not a directory"):
        get_settings()

"""`slimray serve`'s set-up: the admin token kept private, the local Ray head's port checked."""

from __future__ import annotations

import os
import stat

import pytest

from slimray.cli.entry import CliError
from slimray.cli.serve import DEFAULT_GCS_PORT, gcs_port, service_token
from slimray.core.envvars import RAY_GCS_PORT
from slimray.service.settings import get_settings


def test_the_token_file_is_created_private_and_reused(tmp_path):
    """Regression (item 6 of the security review): the file was created world-readable, then chmod'ed."""
    old = os.umask(0)
    try:
        settings = service_token(get_settings(db_path=tmp_path / "state" / "jobs.db"))
    finally:
        os.umask(old)
    token_file = tmp_path / "state" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert settings.api_token.get_secret_value() == token_file.read_text().strip()
    again = service_token(get_settings(db_path=tmp_path / "state" / "jobs.db"))
    assert again.api_token == settings.api_token


def test_a_token_in_the_settings_is_used_as_is(tmp_path):
    settings = service_token(get_settings(api_token="given", db_path=tmp_path / "jobs.db"))
    assert settings.api_token.get_secret_value() == "given" and not (tmp_path / "token").exists()


def test_the_gcs_port_comes_from_its_variable_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv(RAY_GCS_PORT, raising=False)
    assert gcs_port() == DEFAULT_GCS_PORT
    monkeypatch.setenv(RAY_GCS_PORT, "7001")
    assert gcs_port() == 7001
    monkeypatch.setenv(RAY_GCS_PORT, "sixty")
    with pytest.raises(CliError, match=f"{RAY_GCS_PORT} must be a port number. Received: 'sixty'"):
        gcs_port()

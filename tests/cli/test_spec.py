"""`slimray schema`: the job spec's JSON Schema, printed without TensorFlow."""

from __future__ import annotations

import json

import pytest

from slimray.cli.entry import CliError
from slimray.cli.spec import read_spec
from tests.cli.helpers import slimray


def test_schema_command_prints_json_schema():
    proc = slimray("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "JobSpec"


def test_an_invalid_spec_file_is_one_cli_error_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {source: seed_cnn}\ndata: {source: mnist}\ntrain: {epochs: 0}\n")
    with pytest.raises(CliError, match="train.epochs"):
        read_spec(str(bad))

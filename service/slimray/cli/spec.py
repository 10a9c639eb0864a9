"""`slimray schema`, and reading a job spec file for `run` and `submit` (pydantic only, no TensorFlow).
One place turns an invalid spec into a CliError, so both commands word it alike."""

from __future__ import annotations

import argparse
import json

from slimray.cli.entry import CliError
from slimray.core.spec import JobSpec, SpecError, json_schema, load_spec


def read_spec(path: str) -> JobSpec:
    """The validated spec at `path`; an invalid one is a CliError naming every bad field."""
    try:
        return load_spec(path)
    except SpecError as err:
        raise CliError(str(err)) from err


def schema(args: argparse.Namespace) -> int:
    """Print the job spec's JSON Schema (for editors and CI validation)."""
    print(json.dumps(json_schema(), indent=2))
    return 0

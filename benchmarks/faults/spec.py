"""The job a fault run trains: the shipped example (`examples/mnist.yaml`, what `make run` runs)
or its 4x-long variant, with a run directory all nodes share and the settings a fault needs,
each set only when this checkout's spec accepts it (a feature may not exist yet)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from slimray.core.spec import parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist.yaml"
START_TIMEOUT_SECONDS = 60.0  # a group that cannot be placed (a node gone for good) fails this fast


def example(long: bool = False) -> dict[str, Any]:
    """The example's spec; `long`: 4x the epochs with its schedule and checkpoints scaled alike."""
    data = yaml.safe_load(EXAMPLE.read_text())
    if long:
        train, schedule = data["train"], data["prune"]["schedule"]
        train["epochs"] *= 4
        train["checkpoint_every"] *= 4
        for key in ("start", "end", "every"):
            schedule[key] *= 4
    return data


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, section by section (a copy)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def accepts(base: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """Whether this checkout's spec schema takes `overrides` (a feature detected, not assumed)."""
    try:
        parse_spec(merged(base, overrides), "fault benchmark probe")
    except ValueError:
        return False
    return True


def collective_timeout(seconds: float) -> dict[str, Any]:
    return {"failure": {"collective_timeout_seconds": seconds}}


def elastic_workers(num_workers: int) -> dict[str, Any]:
    """Ray Train's elastic range: go on with one worker when the others are lost for good."""
    return {"scaling": {"num_workers": {"min": 1, "max": num_workers}}}


def job_spec(run_dir: Path, long: bool, timeout_seconds: float, elastic: bool) -> dict[str, Any]:
    """The spec of one run: shared local output (all nodes are on this machine), a bounded wait
    for resources, the collective timeout and the elastic range where the schema has them."""
    base = example(long)
    spec = merged(base, {"output": {"dir": str(run_dir), "shared": True},
                         "scaling": {"start_timeout_seconds": START_TIMEOUT_SECONDS}})  # fmt: skip
    if accepts(spec, collective_timeout(timeout_seconds)):
        spec = merged(spec, collective_timeout(timeout_seconds))
    workers = spec["scaling"]["num_workers"]
    if elastic and accepts(spec, elastic_workers(workers)):
        spec = merged(spec, elastic_workers(workers))
    return spec

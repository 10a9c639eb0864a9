"""Every benchmark script runs at its tiny size and writes a valid result (not the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = ("reporting", "time_to_accuracy", "width", "prune_overhead", "communication", "tfmot",
           "service_load", "backends", "startup", "targets")  # fmt: skip

pytestmark = pytest.mark.timeout(1200)


def test_the_makefile_runs_every_benchmark_script():
    makefile = (BENCHMARKS.parent / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("BENCHES :="))
    assert line.split(":=")[1].split() == list(SCRIPTS)
    assert {p.stem.removeprefix("bench_") for p in BENCHMARKS.glob("bench_*.py")} >= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_writes_json_a_table_and_a_plot(name, tmp_path):
    proc = subprocess.run(
        [sys.executable, f"bench_{name}.py", "--size", "tiny", "--out", str(tmp_path)],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=1100,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((tmp_path / f"{name}.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))  # fmt: skip
    assert record["name"] == name and record["command"].startswith(f"bench_{name}.py --size tiny")
    assert record["settings"]["size"] == "tiny"
    assert record["machine"]["cpus"] >= 1 and "keras" in record["machine"]["versions"]
    assert isinstance(record["summary"], dict) and record["summary"]
    assert (tmp_path / f"{name}.md").read_text().count("|") > 6
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

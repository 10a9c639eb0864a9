"""What every benchmark shares: the machine it ran on, repeats summarized as median and spread,
and one writer for `results/<name>.json`, `<name>.md` (a table) and `<name>.png` (a plot).

Timings are compared as ratios measured in one run, alternating the variants in each repeat, so
the shared machine's noise falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).parent / "results"
SIZES = ("tiny", "quick", "full")  # tiny: `make test` checks the script runs; quick: < 5 min all


def parser(description: str, rerender: bool = False) -> argparse.ArgumentParser:
    """The shared options; `rerender`: the script can re-summarize a stored result (--from-json)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", choices=SIZES, default="full", help="how much to measure")
    p.add_argument("--repeats", type=int, default=None, help="repeats (default by --size)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    if rerender:
        p.add_argument(
            "--from-json",
            type=Path,
            default=None,
            help="re-summarize the repeats stored in a result file instead of measuring",
        )
    return p


def pick(size: str, tiny: Any, quick: Any, full: Any) -> Any:
    return {"tiny": tiny, "quick": quick, "full": full}[size]


def machine() -> dict[str, Any]:
    """The machine and the versions that produced a result."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "ray", "numpy", "slimray"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Median with min and max of the repeats (None when nothing was measured)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def command() -> str:
    return " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(
    name: str,
    out: Path,
    settings: dict[str, Any],
    repeats: list[Any],
    summary: dict[str, Any],
    table: str,
    plot: Callable[[Any], None] | None = None,
    measured: dict[str, Any] | None = None,
) -> Path:
    """results/<name>.json (everything), <name>.md (the table) and <name>.png (when `plot`).

    `measured`: the record a re-rendering started from (its command, time and machine are kept).
    """
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "command": measured["command"] if measured else command(),
        "when": measured["when"] if measured else datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": measured["machine"] if measured else machine(),
        "settings": settings,
        "summary": summary,
        "repeats": repeats,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, default=str, allow_nan=False))
    m = record["machine"]
    header = (
        f"# {name}\n\n`{record['command']}` on {m['cpus']} cores ({m['cpu_model']}), {record['when']}\n\n"
    )
    (out / f"{name}.md").write_text(header + table)
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(8, 5))
        plot(fig)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
    print(table)
    return path


def start_ray() -> None:
    """One embedded Ray for all of a script's jobs (run_job joins it): a new local cluster,
    never one that Ray's `ray_current_cluster` file names (another user's, or a dead one)."""
    from slimray.runtime.embedded_ray import start_embedded_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    start_embedded_ray(
        num_cpus=max(4, os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}},
    )


def mnist_spec(run_dir: Path, **overrides: Any):
    """The shipped example (`examples/mnist.yaml`) with sections replaced by `overrides`."""
    import yaml

    from slimray.core.spec import parse_spec

    data = yaml.safe_load((Path(__file__).parent.parent / "examples" / "mnist.yaml").read_text())
    for section, value in overrides.items():
        if value is None:
            data.pop(section, None)
        elif isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    data["output"] = {"dir": str(run_dir)}
    return parse_spec(data, "benchmark spec")


def run(spec) -> dict[str, Any]:
    """Run a job on the script's Ray; the report, or an error naming the job."""
    from slimray.runtime.trainer import run_job

    result = run_job(spec, overwrite=True)
    if result.state != "succeeded":
        raise RuntimeError(f"benchmark job {spec.name} failed: {result.error}")
    return result.report

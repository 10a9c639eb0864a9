"""Start-up and whole-job time, side by side in one run: a bare `import tensorflow, keras`, the
`slimray run` command's own import, plain Keras `model.fit` of the example (same model, data,
split, optimizer, epochs and global batch; dense, one process), and `slimray run` of the example
dense and pruned, each a fresh process with a Ray of its own (cold), and again on a `slimray up`
session whose worker processes are warm (each warm run after the session's keeper has settled,
and the next variant only after its refill). Median of the repeats; variants alternate within a
repeat (`--size tiny`, the suite's smoke run, skips the dense and the warm slimray runs). Writes
results/startup.{json,md,png}.

    .venv/bin/python benchmarks/bench_startup.py [--size tiny|quick|full] [--repeats N]

Goals (issue 27): cold start-up <= 1.5x the bare import; the pruned example's whole job <= 0.8x
plain `fit` at equal or better accuracy; warm start-up <= 3 s (the report's start-up of the warm
pruned job; the command's own import is shown beside it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mnist.yaml"
HERE = Path(__file__).resolve().parent
VARIANTS = ("import", "cli_import", "plain", "slimray_dense", "slimray_pruned", "warm_dense", "warm_pruned")
# `--size tiny` (the suite's smoke run): the cold goals' variants alone (the warm path has its own
# end-to-end test, tests/e2e/test_warm_session.py; its goal is "not measured" at this size)
TINY_VARIANTS = ("import", "cli_import", "plain", "slimray_pruned")
JOB_VARIANTS = ("slimray_dense", "slimray_pruned", "warm_dense", "warm_pruned")  # with a report
COLD_STARTUP_GOAL = 1.5  # x the bare import
WHOLE_JOB_GOAL = 0.8  # x plain fit
WARM_GOAL_SECONDS = 3.0


def _timed(argv: list[str], cwd: Path = HERE, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds of one fresh process, and what it printed; an error names the command."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=3600, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return wall, proc.stdout


def _spec_file(tmp: Path, name: str, epochs: int, pruned: bool) -> Path:
    """The example as a spec file, its run directory in `tmp`; dense: without its `prune`."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["name"], data["train"]["epochs"] = name, epochs
    data["output"] = {"dir": str(tmp / name)}
    if not pruned:
        data.pop("prune")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _session_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "SLIMRAY_SESSION_DIR": str(tmp / "session")}


def _settle(tmp: Path) -> None:
    """`slimray up` on a running session waits until its keeper's refills are done."""
    _timed([sys.executable, "-m", "slimray.cli", "up"], env=_session_env(tmp))


def _slimray(tmp: Path, name: str, epochs: int, pruned: bool, warm: bool = False) -> dict[str, Any]:
    """`slimray run` in a fresh process: its own embedded Ray (`--embedded`), or on the warm
    session once it has settled (and the session settled again after it, outside the timing)."""
    spec = _spec_file(tmp, name, epochs, pruned)
    argv = [sys.executable, "-m", "slimray.cli", "run", str(spec), "--quiet", "--overwrite"]
    if warm:
        _settle(tmp)
    wall, _ = _timed(argv if warm else [*argv, "--embedded"], env=_session_env(tmp))
    if warm:
        _settle(tmp)
    report = json.loads((tmp / name / "report.json").read_text())
    parts = {
        k: v for k, v in report["startup"].items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {"wall": wall, "startup": report["startup"]["total"], "startup_parts": parts,
            "warm": report["startup"].get("warm", False),
            "job_wall": report["wall_seconds"], "accuracy": report["exported_accuracy"],
            "params_after": report["params"]["after"]}  # fmt: skip


def _plain(tmp: Path, epochs: int) -> dict[str, Any]:
    spec = _spec_file(tmp, "plain", epochs, pruned=False)
    wall, out = _timed([sys.executable, "plain_keras.py", str(spec), "--epochs", str(epochs)])
    measured = json.loads(out.strip().splitlines()[-1])
    return {"wall": wall, **measured}


def _import(module: str) -> dict[str, Any]:
    wall, _ = _timed([sys.executable, "-c", f"import {module}"])
    return {"wall": wall, "startup": wall}


def one_repeat(index: int, epochs: int, tmp: Path, variants: tuple[str, ...]) -> dict[str, Any]:
    order = variants[index % len(variants) :] + variants[: index % len(variants)]
    run = {
        "import": lambda: _import("tensorflow, keras"),
        "cli_import": lambda: _import("slimray.cli.run"),
        "plain": lambda: _plain(tmp, epochs),
        "slimray_dense": lambda: _slimray(tmp, f"dense-{index}", epochs, pruned=False),
        "slimray_pruned": lambda: _slimray(tmp, f"pruned-{index}", epochs, pruned=True),
        "warm_dense": lambda: _slimray(tmp, f"warm-dense-{index}", epochs, pruned=False, warm=True),
        "warm_pruned": lambda: _slimray(tmp, f"warm-pruned-{index}", epochs, pruned=True, warm=True),
    }
    return {"order": list(order), "runs": {name: run[name]() for name in order}}


def _median(repeats: list[dict], variant: str, key: str) -> float | None:
    return benchlib.spread([r["runs"][variant].get(key) for r in repeats])["median"]


def summarize(repeats: list[dict], variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    rows = {v: {k: _median(repeats, v, k) for k in ("wall", "startup", "accuracy")} for v in variants}
    for variant in (v for v in JOB_VARIANTS if v in variants):
        parts = [r["runs"][variant]["startup_parts"] for r in repeats]
        rows[variant]["parts"] = {k: benchlib.spread([p[k] for p in parts])["median"] for k in parts[0]
                                  if k != "total"}  # fmt: skip
    bare, cli = rows["import"]["wall"], rows["cli_import"]["wall"]
    cold = cli + rows["slimray_pruned"]["startup"]  # the command's import, then the job's start-up
    whole = rows["slimray_pruned"]["wall"] / rows["plain"]["wall"]
    accurate = rows["slimray_pruned"]["accuracy"] >= rows["plain"]["accuracy"]
    warm = rows["warm_pruned"]["startup"] if "warm_pruned" in rows else None
    goals = {
        "cold_startup_vs_import": {"value": cold / bare, "goal": COLD_STARTUP_GOAL,
                                   "met": cold / bare <= COLD_STARTUP_GOAL},
        "whole_job_vs_plain_fit": {"value": whole, "goal": WHOLE_JOB_GOAL,
                                   "accuracy_at_least_plain": accurate,
                                   "met": whole <= WHOLE_JOB_GOAL and accurate},
        "warm_startup_seconds": {"value": warm, "goal": WARM_GOAL_SECONDS,
                                 "met": warm is not None and warm <= WARM_GOAL_SECONDS,
                                 "with_command_import": cli + warm if warm is not None else None,
                                 "every_warm_run_warm": all(r["runs"][v]["warm"] for r in repeats
                                                            for v in ("warm_dense", "warm_pruned")
                                                            if v in variants)},
    }  # fmt: skip
    return {"variants": rows, "cold_startup_seconds": cold, "goals": goals}


def table(summary: dict[str, Any], settings: dict[str, Any]) -> str:
    rows, bare = summary["variants"], summary["variants"]["import"]["wall"]
    plain = rows["plain"]["wall"]
    lines = [[name, r["wall"], r["wall"] / plain, r["startup"], r["startup"] / bare, r["accuracy"]]
             for name, r in rows.items()]  # fmt: skip
    text = (f"Epochs {settings['epochs']}, {settings['repeats']} repeat(s), medians; each variant a fresh "
            "process. Start-up: plain = process start to `fit`; slimray = the report's `startup` "
            "(run_job's start to rank 0's loop), without the command's own import "
            "(`cli_import`).\n\n")  # fmt: skip
    text += benchlib.markdown_table(["variant", "whole wall s", "wall / plain", "start-up s",
                                     "start-up / bare import", "accuracy"], lines)  # fmt: skip
    for variant in (v for v in ("slimray_pruned", "warm_pruned") if v in rows):
        parts = rows[variant]["parts"]
        text += f"\n{variant}, start-up by part (median s): " + ", ".join(
            f"{k} {v:.2f}" for k, v in parts.items()
        )
        text += "\n"
    warm = summary["goals"]["warm_startup_seconds"]
    if warm["value"] is not None:
        text += (
            f"\nWarm: with the command's own import {warm['with_command_import']:.2f} s; every warm run's "
            f"rank 0 a prestarted process: {warm['every_warm_run_warm']}.\n"
        )
    text += "\n\n" + benchlib.markdown_table(
        ["goal", "figure", "target", "met"],
        [[name, g["value"], g["goal"], "met" if g["met"] else ("missed" if g["value"] is not None else
                                                               "not measured")]
         for name, g in summary["goals"].items()],
    )  # fmt: skip
    return text


def plot(fig: Any, summary: dict[str, Any]) -> None:
    """Each variant's whole wall: its start-up, then the rest."""
    rows = summary["variants"]
    names = [n for n in rows if rows[n]["wall"] is not None]
    ax = fig.add_subplot(1, 1, 1)
    startup = [rows[n]["startup"] for n in names]
    rest = [rows[n]["wall"] - rows[n]["startup"] for n in names]
    ax.barh(names, startup, label="start-up")
    ax.barh(names, rest, left=startup, label="the rest of the job")
    ax.set_xlabel("seconds (median; machine-dependent: compare the bars)")
    ax.legend()


def main() -> None:
    args = benchlib.parser(__doc__.split("\n\n")[0]).parse_args()
    spec = yaml.safe_load(EXAMPLE.read_text())
    epochs = benchlib.pick(args.size, 1, spec["train"]["epochs"], spec["train"]["epochs"])
    repeats = args.repeats or benchlib.pick(args.size, 1, 1, 3)
    variants = TINY_VARIANTS if args.size == "tiny" else VARIANTS
    settings = {"size": args.size, "epochs": epochs, "repeats": repeats, "variants": list(variants)}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        warm = any(v.startswith("warm_") for v in variants)  # a session only for the warm variants
        if warm:
            example = _spec_file(Path(tmp), "like", epochs, pruned=True)
            _timed([sys.executable, "-m", "slimray.cli", "up", "--like", str(example)],
                   env=_session_env(Path(tmp)))  # fmt: skip
        try:
            measured = [one_repeat(i, epochs, Path(tmp), variants) for i in range(repeats)]
        finally:
            if warm:
                _timed([sys.executable, "-m", "slimray.cli", "down"], env=_session_env(Path(tmp)))
    summary = summarize(measured, variants)
    benchlib.write("startup", args.out, settings, measured, summary, table(summary, settings),
                   plot=lambda fig: plot(fig, summary))  # fmt: skip


if __name__ == "__main__":
    main()

"""Time to accuracy: the 2-worker MNIST job dense, pruned as shipped, pruned on a schedule tuned
for time (earlier and harder), and (full size) pruned to the shipped amount on an auto schedule with
a one-point accuracy budget (nothing tuned), same data and seed, side by side in one run. Whole-job wall
time, and the time to the first validation accuracy within 1.0 point of the dense run's final one.
Goal (full size: 64 epochs): pruned wall time <= 0.6x dense. Writes results/time_to_accuracy.*.

    .venv/bin/python benchmarks/bench_time_to_accuracy.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import benchlib

TOLERANCE = 0.01  # one accuracy point


def variants(epochs: int) -> dict[str, dict | None]:
    """`prune` sections: dense, the shipped schedule, one tuned for time, and the shipped amount
    with its steps left to the job (`schedule: {kind: auto}`) and a 1-point accuracy budget."""
    return {
        "dense": None,
        "pruned": {
            "criterion": "taylor",
            "sparsity": 0.5,
            "scope": "local",
            "round_to": 4,
            "schedule": {"kind": "iterative", "start": 45, "end": 135, "every": 45},
        },
        "tuned": {
            "criterion": "taylor",
            "sparsity": 0.625,
            "scope": "local",
            "round_to": 4,
            "schedule": {"kind": "iterative", "start": 15, "end": 45, "every": 15},
        },
        "auto": {
            "criterion": "taylor",
            "sparsity": 0.5,
            "scope": "local",
            "round_to": 4,
            "schedule": {"kind": "auto"},
            "max_accuracy_drop": TOLERANCE,
        },
    }


def curve(report: dict) -> list[tuple[float, float]]:
    return [
        (e["elapsed_seconds"], e["val_accuracy"])
        for e in report["timeline"]
        if e.get("val_accuracy") is not None and e.get("elapsed_seconds") is not None
    ]


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in points if acc >= target), None)


def one_repeat(index: int, epochs: int, eval_every: int, names: tuple[str, ...], tmp: Path) -> dict:
    order = names[index % len(names) :] + names[: index % len(names)]
    runs = {}
    for name in order:
        spec = benchlib.mnist_spec(
            tmp / f"{index}-{name}",
            name=f"tta-{name}",
            prune=variants(epochs)[name],
            train={"epochs": epochs, "eval_every": eval_every, "report_every": 15, "checkpoint_every": 10**6},
        )
        report = benchlib.run(spec)
        runs[name] = {
            "wall_seconds": report["wall_time"]["total"],
            "wall_time": report["wall_time"],
            "final_accuracy": report["exported_accuracy"],
            "curve": curve(report),
            "throughput_gain": report["throughput_gain"],
            "params": report["params"],
            "flops_per_sample": report["flops_per_sample"],
            "prune_event_share": report["wall_time"]["prune_events"] / report["wall_time"]["total"],
            "gradient_allreduce_bytes_per_step": report["gradient_allreduce_bytes_per_step"],
        }
    target = runs["dense"]["final_accuracy"] - TOLERANCE
    for run in runs.values():
        run["seconds_to_target"] = time_to(run["curve"], target)
    return {"order": order, "target_accuracy": target, "runs": runs}


def summarize(repeats: list[dict], names: tuple[str, ...]) -> dict:
    out: dict = {}
    for name in names:

        def ratio(r, key, name=name):
            a, b = r["runs"][name][key], r["runs"]["dense"][key]
            return a / b if a is not None and b else None

        out[name] = {
            "wall_seconds": benchlib.spread([r["runs"][name]["wall_seconds"] for r in repeats]),
            "wall_ratio_vs_dense": benchlib.spread([ratio(r, "wall_seconds") for r in repeats]),
            "seconds_to_target": benchlib.spread([r["runs"][name]["seconds_to_target"] for r in repeats]),
            "time_to_target_ratio_vs_dense": benchlib.spread(
                [ratio(r, "seconds_to_target") for r in repeats]
            ),
            "final_accuracy": benchlib.spread([r["runs"][name]["final_accuracy"] for r in repeats]),
            "accuracy_minus_dense": benchlib.spread(
                [r["runs"][name]["final_accuracy"] - r["runs"]["dense"]["final_accuracy"] for r in repeats]
            ),
            "prune_event_share_of_job": benchlib.spread(
                [r["runs"][name]["prune_event_share"] for r in repeats]
            ),
        }
    judged = "pruned" if "pruned" in out else "tuned"
    pruned = out[judged]
    out["goal"] = {"pruned_wall_ratio_vs_dense": 0.6, "within_points": 1.0, "judged_on": judged}
    out["met"] = (
        pruned["wall_ratio_vs_dense"]["median"] <= 0.6
        and pruned["accuracy_minus_dense"]["median"] >= -TOLERANCE
    )
    if "auto" in out:  # issue 24's goal for a job whose steps nobody tuned: <= 0.5x dense, 1 point
        auto = out["auto"]
        met = auto["wall_ratio_vs_dense"]["median"] <= 0.5
        met = met and auto["accuracy_minus_dense"]["median"] >= -TOLERANCE
        out["auto_goal"] = {"wall_ratio_vs_dense": 0.5, "within_points": 1.0, "met": met}
    return out


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    epochs = benchlib.pick(args.size, 1, 2, 64)
    eval_every = benchlib.pick(args.size, 5, 15, 30)
    repeats_n = args.repeats or benchlib.pick(args.size, 1, 1, 2)
    # quick: the shipped schedule's events (steps 45-135) and the auto one's need more than its 60 steps
    full = ("dense", "pruned", "tuned", "auto")
    names = benchlib.pick(args.size, ("dense", "tuned"), ("dense", "tuned"), full)
    benchlib.start_ray()
    with tempfile.TemporaryDirectory() as tmp:
        repeats = [one_repeat(i, epochs, eval_every, names, Path(tmp)) for i in range(repeats_n)]
    summary = summarize(repeats, names)
    rows = []
    for name in names:
        s = summary[name]
        rows.append(
            (
                name,
                s["wall_seconds"]["median"],
                s["wall_ratio_vs_dense"]["median"],
                s["seconds_to_target"]["median"],
                s["time_to_target_ratio_vs_dense"]["median"],
                s["final_accuracy"]["median"],
                s["prune_event_share_of_job"]["median"],
            )
        )
    table = benchlib.markdown_table(
        [
            "run",
            "job wall s",
            "wall / dense",
            "s to dense-1pt",
            "time-to-acc / dense",
            "final acc",
            "prune events share",
        ],
        rows,
    )
    table += (
        f"\n{len(repeats)} repeat(s), {epochs} epochs, 2 workers, medians. Goal: pruned <= 0.60x dense "
        f"wall within 1 point: {'met' if summary['met'] else 'missed'}.\n"
    )
    if "auto_goal" in summary:
        table += (
            "auto: the shipped sparsity, `schedule: {kind: auto}` and `max_accuracy_drop: 0.01`, nothing "
            f"else set. Goal (issue 24, with a throughput target not built yet): <= 0.50x dense wall within "
            f"1 point: {'met' if summary['auto_goal']['met'] else 'missed'}.\n"
        )

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        for name, run in repeats[0]["runs"].items():
            if run["curve"]:
                ax.plot(
                    *zip(*run["curve"], strict=True),
                    marker=".",
                    label=f"{name} ({run['wall_seconds']:.0f} s)",
                )
        ax.axhline(repeats[0]["target_accuracy"], color="grey", linestyle="--", label="dense final - 1 pt")
        ax.set_xlabel("seconds since the job started")
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(max(0.0, repeats[0]["target_accuracy"] - 0.2), 1.0)
        ax.legend(loc="lower right")
        ax.set_title(f"MNIST, {epochs} epochs, 2 workers: accuracy vs wall time")

    benchlib.write(
        "time_to_accuracy",
        args.out,
        {"size": args.size, "epochs": epochs, "eval_every": eval_every},
        repeats,
        summary,
        table,
        plot,
    )


if __name__ == "__main__":
    main()

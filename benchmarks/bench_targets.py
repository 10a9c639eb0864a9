"""Pruning to a goal instead of a ratio (issue 24), one process on the shipped MNIST digits:
(a) FLOPs targets for a 1.5x, 2x and 3x cheaper model on the seed CNN and a ResNet, each pruned
from the same trained dense model (`prune.target`'s planner, global scope, Taylor scores): the
FLOPs kept against the target, the gain the FLOPs predict against the samples/s gain measured
(dense and pruned steps alternating in each repeat) and the accuracy after a short fine-tune;
(c) a threshold sweep on the seed CNN: tau -> the sparsity and FLOPs it reached, the gain, the
accuracy; (d) the shipped example (2 Ray workers) pruned in one aggressive event, without and
with `max_accuracy_drop: 0.01`: the accuracy collapses without it; with it the event is rolled
back (retried smaller, then pruning stops) and the job ends inside the budget.
Writes results/targets.{json,md,png}.

    .venv/bin/python benchmarks/bench_targets.py [--size tiny|quick|full] [--repeats N]

Not measured here (not built): `throughput_gain` targets (a step-time model measured on the
job's workers), `schedule: {kind: auto}` (so not part (b)).
"""

from __future__ import annotations

import benchlib
from bench_width import gain_axes, make_step, samples_per_second

AGGRESSIVE = 0.9  # part (d): the sparsity of its one event
BUDGET = {"max_accuracy_drop": 0.01, "max_retries": 1}
MODELS = {"seed_cnn": {}, "resnet": {"input_shape": (28, 28, 1)}}
TARGET_GAINS = (1.5, 2.0, 3.0)  # FLOPs kept: 1 / gain
TAUS = (0.3, 0.6, 0.9, 1.2)  # normalized by the group's mean score
BATCH = 64


def _data():
    from slimray.zoo.datasets import load_builtin

    data = load_builtin("mnist", validation_split=0.2, seed=0)
    return data.x_train, data.y_train, data.x_val, data.y_val


def _fit(model, x, y, steps: int, seed: int = 0) -> None:
    """`steps` Adam steps of batch BATCH over (x, y), in order from a seeded shuffle."""
    import keras
    import numpy as np

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    order = np.random.default_rng(seed).permutation(len(x))
    for i in range(steps):
        idx = order[(i * BATCH) % len(x) :][:BATCH]
        model.train_on_batch(x[idx], y[idx])


def _accuracy(model, x, y) -> float:
    import numpy as np

    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y))


def _prune(dense, x, y, **rule):
    """`dense` pruned by `rule` (`target=` or `threshold=`), Taylor scores on one batch."""
    import keras

    from slimray.pruning import Pruner, ScoringBatch

    batch = ScoringBatch(x[:256], y[:256], keras.losses.SparseCategoricalCrossentropy())
    return Pruner("taylor", {"scope": "global"}).prune(dense, batch=batch, **rule)


def _rates(models: dict, x, y, steps: int, repeats: int) -> dict:
    """Median train samples/s of each model, the models alternating inside every repeat."""
    import keras

    fns = {k: make_step(keras.models.clone_model(m), keras.optimizers.Adam(), False)
           for k, m in models.items()}  # fmt: skip
    measured: dict = {k: [] for k in models}
    keys = list(models)
    for r in range(repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            measured[k].append(samples_per_second(fns[k], x[:BATCH], y[:BATCH], steps))
    return {k: benchlib.spread(v)["median"] for k, v in measured.items()}


def bench_model(name: str, data, train_steps: int, tune_steps: int, steps: int, repeats: int,
                rules: list[tuple[str, dict]]) -> list[dict]:  # fmt: skip
    """Every rule applied to one trained dense model, each fine-tuned alike; one row a rule."""
    import keras

    from slimray.pruning import count_model
    from slimray.zoo.models import build_model

    x, y, xv, yv = data
    keras.utils.set_random_seed(0)
    dense = build_model(name, **MODELS[name])
    _fit(dense, x, y, train_steps)
    dense_flops = count_model(dense).flops
    tuned = keras.models.clone_model(dense)
    tuned.set_weights(dense.get_weights())
    _fit(tuned, x, y, tune_steps, seed=1)  # the dense model trained as long as each pruned one
    pruned = {label: _prune(dense, x, y, **rule) for label, rule in rules}
    for result in pruned.values():
        _fit(result.model, x, y, tune_steps, seed=1)
    rates = _rates({"dense": dense, **{k: r.model for k, r in pruned.items()}}, x, y, steps, repeats)
    rows = [{"model": name, "rule": "dense", "flops_kept": 1.0, "predicted_gain": 1.0, "gain": 1.0,
             "sparsity": 0.0, "accuracy": _accuracy(tuned, xv, yv)}]  # fmt: skip
    for (label, rule), result in zip(rules, pruned.values(), strict=True):
        kept = result.after.flops / dense_flops
        gain = rates[label] / rates["dense"]
        channels = result.summary()
        rows.append({
            "model": name, "rule": label, "target": rule.get("target", {}).get("flops"),
            "threshold": rule.get("threshold"), "flops_kept": kept, "predicted_gain": 1 / kept,
            "gain": gain, "error": gain * kept - 1,
            "sparsity": 1 - channels["channels_after"] / channels["channels_before"],
            "accuracy": _accuracy(result.model, xv, yv),
        })  # fmt: skip
    return rows


def bench_rollback(size: str) -> list[dict]:
    """Part (d): one event removing AGGRESSIVE of the channels, on 2 Ray workers, without (not at the
    tiny size) and with an accuracy budget; each job's accuracy before the event, its final accuracy
    and its rollbacks."""
    import tempfile
    from pathlib import Path

    steps, event, recovery = benchlib.pick(size, (40, 16, 8), (240, 90, 30), (480, 180, 40))
    benchlib.start_ray()
    rows = []
    jobs = (("no budget", {}), ("max_accuracy_drop 0.01", BUDGET))
    for label, budget in jobs[1:] if size == "tiny" else jobs:  # tiny: the budget's path alone
        with tempfile.TemporaryDirectory() as out:
            spec = benchlib.mnist_spec(
                Path(out), name=f"rollback-{'budget' if budget else 'none'}",
                train={"epochs": None, "steps": steps, "eval_every": recovery},
                prune={"sparsity": AGGRESSIVE, "schedule": {"kind": "one_shot", "step": event},
                       "recovery_steps": recovery, **budget},
            )  # fmt: skip
            report = benchlib.run(spec)
        before = [e.val_accuracy for e in _timeline(report) if e.step <= event and e.val_accuracy is not None]
        rows.append({"job": label, "accuracy_before_event": before[-1] if before else None,
                     "final_accuracy": report["final_val_accuracy"],
                     "final_sparsity": report["final_sparsity"], "rollbacks": report.get("rollbacks", []),
                     "wall_seconds": report["wall_seconds"]})  # fmt: skip
    return rows


def _timeline(report: dict) -> list:
    from slimray.core.records import TimelineEntry

    return [TimelineEntry.model_validate(e) for e in report["timeline"]]


def rollback_table(rows: list[dict]) -> str:
    header = ["job (one event, sparsity 0.9)", "val accuracy before the event", "final val accuracy",
              "final sparsity", "rollbacks (step: retry level)", "wall s"]  # fmt: skip
    cells = [(r["job"], r["accuracy_before_event"], r["final_accuracy"], r["final_sparsity"],
              ", ".join(f"{b['step']}: {b['retry_level']}" for b in r["rollbacks"]) or "-", r["wall_seconds"])
             for r in rows]  # fmt: skip
    return "\n(d) An accuracy budget's rollback\n\n" + benchlib.markdown_table(header, cells)


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    models = benchlib.pick(args.size, ["seed_cnn"], list(MODELS), list(MODELS))
    gains = benchlib.pick(args.size, (2.0,), TARGET_GAINS, TARGET_GAINS)
    taus = benchlib.pick(args.size, (0.6,), TAUS, TAUS)
    train_steps, tune_steps = benchlib.pick(args.size, (10, 5), (150, 60), (400, 150))
    steps = benchlib.pick(args.size, 3, 10, 20)
    repeats = args.repeats or benchlib.pick(args.size, 1, 3, 5)
    data = _data()
    rows = []
    for name in models:
        rules = [(f"flops {1 / g:.3f}", {"target": {"flops": round(1 / g, 3)}}) for g in gains]
        if name == "seed_cnn":
            rules += [(f"threshold {t}", {"threshold": t}) for t in taus]
        rows += bench_model(name, data, train_steps, tune_steps, steps, repeats, rules)
    header = ["model", "rule", "FLOPs kept", "predicted gain", "measured gain", "error", "sparsity",
              "accuracy"]  # fmt: skip
    keys = ("model", "rule", "flops_kept", "predicted_gain", "gain", "error", "sparsity", "accuracy")
    table = benchlib.markdown_table(header, [tuple(r.get(k) for k in keys) for r in rows])
    table += (
        f"\nEach rule prunes the same dense model (trained {train_steps} steps, batch {BATCH}), then "
        f"fine-tunes {tune_steps} steps (the dense row: as long). Predicted gain = 1 / FLOPs kept; "
        f"measured = train samples/s vs dense ({steps} steps x {repeats} repeats, alternating, "
        "medians); error = measured / predicted - 1. Accuracy: validation, after the fine-tune; the "
        "ResNet's BatchNormalization statistics need more steps than the quick size trains (its "
        "training accuracy rises while its validation accuracy stays near chance there).\n"
    )
    rollback = bench_rollback(args.size)
    table += rollback_table(rollback) + (
        "\nThe shipped example's job (2 workers) with its schedule replaced by one event; "
        "`recovery_steps` after it rank 0 validates (`eval_every` as often). A budget's final accuracy "
        "must be at most 1 point below the accuracy before the event.\n"
    )
    errors = [r["error"] for r in rows if r.get("target")]
    off = [abs(r["flops_kept"] - r["target"]) / r["target"] for r in rows if r.get("target")]
    budgeted = rollback[-1]
    inside = (budgeted["final_accuracy"] >= budgeted["accuracy_before_event"] - BUDGET["max_accuracy_drop"]
              if budgeted["accuracy_before_event"] is not None else None)  # fmt: skip
    summary = {"rows": rows, "target_error_mean": sum(errors) / len(errors) if errors else None,
               "flops_kept_off_target_max": max(off, default=None), "rollback": rollback,
               "budget_rolled_back": bool(budgeted["rollbacks"]), "budget_final_inside": inside}  # fmt: skip

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        for name in models:
            group = [r for r in rows if r["model"] == name and r.get("target")]
            ax.plot([r["predicted_gain"] for r in group], [r["gain"] for r in group], marker="o", label=name)
        gain_axes(ax, max(r["predicted_gain"] for r in rows), "gain the FLOPs target predicts (dense / kept)",
                  "FLOPs targets: predicted vs measured gain")  # fmt: skip

    settings = {"size": args.size, "models": models, "target_gains": gains, "taus": taus, "steps": steps,
                "train_steps": train_steps, "tune_steps": tune_steps, "repeats": repeats}  # fmt: skip
    benchlib.write("targets", args.out, settings, [], summary, table, plot)


if __name__ == "__main__":
    main()

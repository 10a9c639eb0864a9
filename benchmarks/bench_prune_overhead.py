"""What one prune event costs, per phase, as the model grows: the seed CNN at width x1, x2, x4,
pruned to half its channels in one process (trace the graph, score with Taylor on a batch, plan,
surgery with the Adam state carried, retrace the train step). The events' share of a whole job is
in results/time_to_accuracy.json (`prune_event_share_of_job`). Writes results/prune_overhead.*.

    .venv/bin/python benchmarks/bench_prune_overhead.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import time

import benchlib
from bench_width import make_step

PHASES = ("graph", "score", "allreduce", "surgery", "retrace")


def one_event(mult: int, batch: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from slimray.pruning import Pruner, ScoringBatch, build_graph
    from slimray.zoo.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("seed_cnn", conv1=32 * mult, conv2=64 * mult, fc=128 * mult)
    optimizer = keras.optimizers.Adam()
    x = np.random.default_rng(0).random((batch, 28, 28, 1)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, size=batch).astype("int32")
    step = make_step(model, optimizer, jit=False)
    step(tf.constant(x), tf.constant(y))  # the optimizer has state to carry
    durations: dict[str, float] = {}
    start = time.perf_counter()
    graph = build_graph(model)
    durations["graph"] = time.perf_counter() - start
    pruner = Pruner("taylor", {"scope": "local", "round_to": 4})
    loss = keras.losses.SparseCategoricalCrossentropy()
    scored = pruner.decide(model, 0.5, ScoringBatch(x, y, loss), None, graph)
    durations.update(scored.durations)
    result = pruner.apply(model, scored.plan, optimizer, graph, durations)
    new_step = make_step(result.model, result.optimizer, jit=False)
    start = time.perf_counter()
    new_step(tf.constant(x), tf.constant(y))
    durations["retrace"] = time.perf_counter() - start
    return {
        "width": mult,
        "params": model.count_params(),
        "params_after": result.model.count_params(),
        "seconds": {p: durations.get(p, 0.0) for p in PHASES},
    }


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    widths = benchlib.pick(args.size, (1,), (1,), (1, 2, 4))
    repeats_n = args.repeats or benchlib.pick(args.size, 1, 2, 5)
    repeats = [[one_event(m, 128) for m in widths] for _ in range(repeats_n)]
    rows, summary = [], {}
    for i, mult in enumerate(widths):
        per = {p: benchlib.spread([r[i]["seconds"][p] for r in repeats]) for p in PHASES}
        total = benchlib.spread([sum(r[i]["seconds"].values()) for r in repeats])
        summary[str(mult)] = {"params": repeats[0][i]["params"], "phases": per, "total": total}
        rows.append(
            (
                f"x{mult}",
                repeats[0][i]["params"],
                *(per[p]["median"] * 1e3 for p in PHASES),
                total["median"] * 1e3,
            )
        )
    table = benchlib.markdown_table(
        ["seed CNN width", "params", *(f"{p} ms" for p in PHASES), "event ms"], rows
    )
    table += f"\nmedians of {repeats_n} repeat(s); one process (allreduce is the identity reducer).\n"

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        bottom = [0.0] * len(widths)
        labels = [f"x{m}\n{summary[str(m)]['params']:,} params" for m in widths]
        for p in PHASES:
            values = [summary[str(m)]["phases"][p]["median"] * 1e3 for m in widths]
            ax.bar(labels, values, bottom=bottom, label=p)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("ms per prune event")
        ax.legend()
        ax.set_title("Prune-event cost by phase and model size")

    benchlib.write(
        "prune_overhead",
        args.out,
        {"size": args.size, "widths": widths, "batch": 128},
        repeats,
        summary,
        table,
        plot,
    )


if __name__ == "__main__":
    main()

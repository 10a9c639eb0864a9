"""The two allreduce backends side by side, 2 Ray Train workers, the seed CNN before and after
pruning half its channels: step time, the gradient allreduce alone, and the prune event (score,
score allreduce, agreement, surgery, retrace). Rounds alternate the backends, so the shared
machine's noise falls on both. Writes results/backends.{json,md,png}.

    .venv/bin/python benchmarks/bench_backends.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import benchlib

BACKENDS = ("tf-collective", "horovod")
SPARSITY = 0.5
BATCH = 64  # per worker


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    times = []
    for i in range(repeats + warmup):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _measure(backend, model, optimizer, train, x, y, repeats: int) -> dict:
    """Median step and gradient-allreduce times of the current model."""
    import tensorflow as tf

    from slimray.runtime.modeling import gradient_bytes

    step = backend.train_step(model, optimizer, BATCH, train)
    tensors = [tf.ones(v.shape, v.dtype) for v in model.trainable_variables]
    allreduce = tf.function(lambda: backend.allreduce_gradients(tensors))
    return {
        "params": model.count_params(),
        "gradient_bytes": gradient_bytes(model),
        "step_ms": _median_ms(lambda: [t.numpy() for t in step(x, y)], repeats),
        "allreduce_ms": _median_ms(lambda: [t.numpy() for t in allreduce()], repeats),
    }


def _prune_event(backend, pruner, model, optimizer, train, x, y, baseline) -> tuple:
    """One prune event as the worker runs it, through the backend's reducer; its seconds."""
    import keras

    from slimray.pruning import ScoringBatch, build_graph
    from slimray.runtime.agreement import check_agreement

    start = time.perf_counter()
    graph = build_graph(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=train.from_logits)
    scored = pruner.decide(model, SPARSITY, ScoringBatch(x, y, loss), baseline, graph)
    check_agreement(scored.plan, pruner.reducer, step=0)
    with backend.strategy.scope():
        result = pruner.apply(model, scored.plan, optimizer, graph)
    backend.train_step(result.model, result.optimizer, BATCH, train)(x, y)  # the retrace
    return result.model, result.optimizer, (time.perf_counter() - start) * 1e3


def loop(config):
    import keras
    import numpy as np
    import ray.train

    from slimray.core.spec import TrainSpec
    from slimray.pruning import Pruner, build_graph
    from slimray.runtime.backends import get_backend
    from slimray.runtime.modeling import build_optimizer
    from slimray.zoo.models import build_model

    ctx = ray.train.get_context()
    backend = get_backend(config["backend"])(ctx.get_world_rank(), ctx.get_world_size())
    train = TrainSpec(steps=1, batch_size=BATCH, learning_rate=0.001)
    keras.utils.set_random_seed(0)
    with backend.strategy.scope():
        model = build_model("seed_cnn")
        optimizer = build_optimizer(train)
        optimizer.build(model.trainable_variables)
    backend.broadcast_weights(model, optimizer)
    rng = np.random.default_rng(ctx.get_world_rank())
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int32)
    pruner = Pruner("taylor", {"scope": "local"}, backend.reducer())
    baseline = {g.id: g.size for g in build_graph(model).groups}
    before = _measure(backend, model, optimizer, train, x, y, config["repeats"])
    model, optimizer, event_ms = _prune_event(backend, pruner, model, optimizer, train, x, y, baseline)
    after = _measure(backend, model, optimizer, train, x, y, config["repeats"])
    if ctx.get_world_rank() == 0:
        Path(config["out"]).write_text(
            json.dumps({"before": before, "after": after, "prune_event_ms": event_ms})
        )


def _run(backend: str, repeats: int, tmp: str) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from slimray.runtime.backends import get_backend

    out = Path(tmp) / f"{backend}.json"
    DataParallelTrainer(
        loop,
        backend_config=get_backend(backend).ray_config(),
        train_loop_config={"backend": backend, "repeats": repeats, "out": str(out)},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=tmp),
    ).fit()
    return json.loads(out.read_text())


METRICS = (("step_ms", "step ms"), ("allreduce_ms", "gradient allreduce ms"))


def summarize(rounds: list[dict]) -> dict:
    """Per backend: medians over rounds of each metric before and after, and the prune event."""
    summary = {}
    for backend in BACKENDS:
        runs = [r[backend] for r in rounds]
        row = {f"{stage}_{key}": statistics.median(run[stage][key] for run in runs)
               for stage in ("before", "after") for key, _ in METRICS}  # fmt: skip
        row["prune_event_ms"] = statistics.median(run["prune_event_ms"] for run in runs)
        row["gradient_bytes_before"] = runs[0]["before"]["gradient_bytes"]
        row["gradient_bytes_after"] = runs[0]["after"]["gradient_bytes"]
        summary[backend] = row
    # the ratio within each round (the two ran minutes apart, not hours): median and spread
    summary["horovod_over_tf_collective"] = {
        key: benchlib.spread([_value(r["horovod"], key) / _value(r["tf-collective"], key) for r in rounds])
        for key in summary["horovod"] if key.endswith("_ms")
    }  # fmt: skip
    return summary


def _value(run: dict, key: str) -> float:
    """`before_step_ms` -> run["before"]["step_ms"]; `prune_event_ms` -> run["prune_event_ms"]."""
    stage, _, metric = key.partition("_")
    return run[stage][metric] if stage in ("before", "after") else run[key]


def _ratio(summary: dict, key: str) -> tuple[float, str]:
    spread = summary["horovod_over_tf_collective"][key]
    return spread["median"], f"{spread['min']:.2f}-{spread['max']:.2f}"


def table(summary: dict, rounds: int, repeats: int) -> str:
    rows = []
    for stage in ("before", "after"):
        for key, label in METRICS:
            name = f"{stage}_{key}"
            values = [summary[b][name] for b in BACKENDS]
            rows.append((f"{label}, {stage} pruning", *values, *_ratio(summary, name)))
    values = [summary[b]["prune_event_ms"] for b in BACKENDS]
    label = "prune event ms (score, allreduce, agreement, surgery, retrace)"
    rows.append((label, *values, *_ratio(summary, "prune_event_ms")))
    header = ["median of rounds", "tf-collective", "horovod", "horovod / tf-collective", "ratio's spread"]
    text = benchlib.markdown_table(header, rows)
    bytes_ = summary["horovod"]
    return text + (
        f"\n2 workers on one machine, batch {BATCH} per worker, seed CNN pruned to {SPARSITY:.0%} of its "
        f"channels by taylor (gradient bytes per step {bytes_['gradient_bytes_before']:,} -> "
        f"{bytes_['gradient_bytes_after']:,}); {rounds} rounds alternating the backends, {repeats} "
        "timed repeats each; the ratio is taken within each round (the two backends ran a minute "
        "apart), its median and spread over the rounds.\n"
    )


def main() -> None:
    import ray

    args = benchlib.parser(__doc__).parse_args()
    repeats = args.repeats or benchlib.pick(args.size, 3, 20, 30)
    rounds = benchlib.pick(args.size, 1, 2, 6)
    benchlib.start_ray()
    with tempfile.TemporaryDirectory() as tmp:
        measured = [{b: _run(b, repeats, tmp) for b in BACKENDS} for _ in range(rounds)]
    ray.shutdown()
    summary = summarize(measured)

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        labels = [f"{label}\n{stage}" for stage in ("before", "after") for _, label in METRICS]
        labels.append("prune event")
        for offset, backend in ((-0.2, "tf-collective"), (0.2, "horovod")):
            row = summary[backend]
            values = [row[f"{stage}_{key}"] for stage in ("before", "after") for key, _ in METRICS]
            values.append(row["prune_event_ms"])
            ax.bar([i + offset for i in range(len(values))], values, width=0.4, label=backend)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median, log scale)")
        ax.set_title("Allreduce backends, seed CNN, 2 workers")
        ax.legend()

    benchlib.write("backends", args.out, {"size": args.size, "repeats": repeats, "rounds": rounds,
                                          "batch": BATCH, "sparsity": SPARSITY},
                   measured, summary, table(summary, rounds, repeats), plot)  # fmt: skip


if __name__ == "__main__":
    main()

"""Width scaling: each model at keep 1.0 / 0.75 / 0.5 / 0.25 of its channels (made by slimray's
surgery), `jit_compile` off and on, one process: train samples/s next to the FLOPs ratio.
Efficiency = measured gain / FLOPs gain (1.0 = the step got as much faster as it got cheaper).
Widths alternate inside each repeat. Writes results/width.{json,md,png}.

    .venv/bin/python benchmarks/bench_width.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import time

import benchlib

MODELS = {
    "seed_cnn": {"input_shape": (28, 28, 1)},
    "vgg": {"input_shape": (32, 32, 3)},
    "resnet": {"input_shape": (32, 32, 3)},
    "mobilenet": {"input_shape": (32, 32, 3)},
}
KEEPS = (1.0, 0.75, 0.5, 0.25)


def make_step(model, optimizer, jit: bool):
    """The runtime's kind of step: a `tf.function` forward/backward/apply, returning the loss."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=jit)
    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    @tf.function
    def step(x, y):
        loss, g = grads(x, y)
        optimizer.apply_gradients(zip(g, model.trainable_variables, strict=True))
        return loss

    return step


def samples_per_second(step, x, y, steps: int) -> float:
    import tensorflow as tf

    x, y = tf.constant(x), tf.constant(y)
    for _ in range(3):  # trace and warm up
        step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return len(x) * steps / (time.perf_counter() - start)


def variants(name: str, kwargs: dict, keeps: tuple[float, ...]):
    """(keep, model, optimizer factory, flops) for every width, all pruned from one dense model."""
    import keras

    from slimray.pruning import Pruner, count_model
    from slimray.zoo.models import build_model

    keras.utils.set_random_seed(0)
    dense = build_model(name, **kwargs)
    out = []
    for keep in keeps:
        model = dense if keep == 1.0 else Pruner("l1").prune(dense, 1.0 - keep).model
        out.append((keep, model, count_model(model).flops))
    return out


def bench_model(name: str, kwargs: dict, batch: int, steps: int, repeats: int, jits, keeps) -> list[dict]:
    import keras
    import numpy as np

    x = np.random.default_rng(0).normal(size=(batch, *kwargs["input_shape"])).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, size=batch).astype("int32")
    widths = variants(name, kwargs, keeps)
    rows = []
    for jit in jits:
        steps_fns = {keep: make_step(m, keras.optimizers.Adam(), jit) for keep, m, _ in widths}
        measured = {keep: [] for keep, _, _ in widths}
        for r in range(repeats):
            order = widths[r % len(widths) :] + widths[: r % len(widths)]
            for keep, _, _ in order:
                measured[keep].append(samples_per_second(steps_fns[keep], x, y, steps))
        dense_flops = widths[0][2]
        dense_rate = benchlib.spread(measured[1.0])["median"]
        for keep, model, flops in widths:
            rate = benchlib.spread(measured[keep])
            gain = rate["median"] / dense_rate
            rows.append(
                {
                    "model": name,
                    "keep": keep,
                    "jit_compile": jit,
                    "params": model.count_params(),
                    "flops_per_sample": flops,
                    "flops_gain": dense_flops / flops,
                    "samples_per_second": rate,
                    "gain": gain,
                    "efficiency": gain / (dense_flops / flops),
                }
            )
    return rows


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    models = benchlib.pick(args.size, ["seed_cnn"], ["seed_cnn"], list(MODELS))
    steps = benchlib.pick(args.size, 3, 10, 20)
    repeats = args.repeats or benchlib.pick(args.size, 1, 2, 3)
    keeps = benchlib.pick(args.size, (1.0, 0.5), (1.0, 0.5), KEEPS)
    jits = benchlib.pick(args.size, (False,), (False, True), (False, True))
    rows = [row for m in models for row in bench_model(m, MODELS[m], 128, steps, repeats, jits, keeps)]
    table = benchlib.markdown_table(
        ["model", "keep", "jit", "params", "FLOPs gain", "samples/s", "gain", "efficiency"],
        [
            (
                r["model"],
                r["keep"],
                r["jit_compile"],
                r["params"],
                r["flops_gain"],
                r["samples_per_second"]["median"],
                r["gain"],
                r["efficiency"],
            )
            for r in rows
        ],
    )
    table += f"\nbatch 128, {steps} steps x {repeats} repeats per width (medians), one process.\n"

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        for (model, jit), group in _groups(rows).items():
            ax.plot(
                [r["flops_gain"] for r in group],
                [r["gain"] for r in group],
                marker="o",
                label=f"{model}{' (jit)' if jit else ''}",
            )
        gain_axes(ax, max(r["flops_gain"] for r in rows), "FLOPs gain (dense / pruned)",
                  "Width scaling: measured gain vs FLOPs gain")  # fmt: skip

    benchlib.write(
        "width",
        args.out,
        {
            "size": args.size,
            "models": models,
            "steps": steps,
            "batch": 128,
            "keeps": keeps,
            "jit_compile": jits,
        },
        [],
        {"rows": rows},
        table,
        plot,
    )


def gain_axes(ax, top: float, xlabel: str, title: str) -> None:
    """A measured-gain plot's frame: the FLOPs-ideal diagonal up to `top`, labels and legend."""
    ax.plot([1, top], [1, top], color="grey", linestyle="--", label="FLOPs-ideal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("measured samples/s gain")
    ax.legend()
    ax.set_title(title)


def _groups(rows):
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["jit_compile"]), []).append(r)
    return groups


if __name__ == "__main__":
    main()

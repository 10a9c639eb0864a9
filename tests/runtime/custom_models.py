"""Importable model builders for `module:function` specs in tests."""

from __future__ import annotations

import keras


def tiny(units: int = 8, input_dim: int = 16, classes: int = 4) -> keras.Model:
    inputs = keras.Input((input_dim,))
    x = keras.layers.Dense(units, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def not_a_model() -> str:
    return "surprise"

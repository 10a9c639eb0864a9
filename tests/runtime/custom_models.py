"""Importable model builders for `module:function` specs in tests."""

from __future__ import annotations

import keras


def tiny(units: int = 8, input_dim: int = 16, classes: int = 4) -> keras.Model:
    inputs = keras.Input((input_dim,))
    x = keras.layers.Dense(units, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def not_a_model() -> str:
    return "surprise"


def partly_supported(input_shape=(28, 28, 1), classes: int = 10) -> keras.Model:
    """`UnitNormalization` mixes channels and has no handler: `hidden`'s channels stay whole."""
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    x = keras.layers.UnitNormalization(name="unit_norm")(x)
    x = keras.layers.Dense(32, activation="relu", name="second")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="out")(x))

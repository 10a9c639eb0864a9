"""An allowed model module for the policy tests: one real builder, and the traps the policy
must refuse (an imported callable, a private helper, a reassigned name, a class)."""

from __future__ import annotations

from subprocess import run


def build(units: int = 4):
    import keras

    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(units)(inputs))


def _helper():
    return None


def shadowed():
    return None


shadowed = run  # noqa: F811


class Builder:
    pass

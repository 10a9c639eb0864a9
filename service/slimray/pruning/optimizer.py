"""Carry an optimizer across surgery: same configuration, iteration count, and slot variables
(momentum, Adam moments, ...) sliced exactly like the weights they belong to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from slimray.pruning import keras_internals
from slimray.pruning.surgery import VariableMove

# Lists of per-variable slots, aligned with the optimizer's variables (Keras's own in
# keras_internals; a user's added with register_optimizer_slots).
_SLOTS: dict[type, tuple[str, ...]] = dict(keras_internals.OPTIMIZER_SLOTS)


def register_optimizer_slots(optimizer_class: type, attributes: Sequence[str]) -> None:
    """Name the slot-list attributes of an optimizer class, e.g. `("_momentums",)`."""
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, keras.optimizers.Optimizer)):
        raise TypeError(f"Expected a keras optimizer class. Received: {optimizer_class!r}")
    _SLOTS[optimizer_class] = tuple(attributes)


def _slot_attributes(optimizer: Any) -> tuple[str, ...]:
    cls = type(optimizer)
    if cls not in _SLOTS:
        raise ValueError(
            f"Optimizer {cls.__name__} has no registered slot layout, so its state cannot be "
            "carried over; call slimray.pruning.register_optimizer_slots"
            f"({cls.__name__}, [...]). Known: {sorted(c.__name__ for c in _SLOTS)}"
        )
    return _SLOTS[keras.optimizers.Optimizer] + _SLOTS[cls]


def carry_optimizer(optimizer: Any, moves: Sequence[VariableMove], new_model: Any) -> Any:
    """A new optimizer for `new_model` with `optimizer`'s config and sliced state."""
    attributes = _slot_attributes(optimizer)
    new = type(optimizer).from_config(optimizer.get_config())
    new.build(new_model.trainable_variables)
    if not optimizer.built:
        return new
    new.iterations.assign(optimizer.iterations)
    old_variables = keras_internals.optimizer_variables(optimizer)
    old_index = {id(v): i for i, v in enumerate(old_variables)}
    new_index = {id(v): i for i, v in enumerate(keras_internals.optimizer_variables(new))}
    for move in moves:
        i, j = old_index.get(id(move.old)), new_index.get(id(move.new))
        if i is None or j is None:
            continue
        for attribute in attributes:
            old_slots = getattr(optimizer, attribute, None) or []
            new_slots = getattr(new, attribute, None) or []
            if len(old_slots) != len(old_variables) or not new_slots:
                continue
            if old_slots[i] is None or new_slots[j] is None:
                continue
            new_slots[j].assign(move.take(keras.ops.convert_to_numpy(old_slots[i])))
    return new

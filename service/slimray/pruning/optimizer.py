"""Carry an optimizer across surgery: same configuration, iteration count, and slot variables
(momentum, Adam moments, ...) sliced exactly like the weights they belong to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from slimray.pruning.surgery import VariableMove

# Lists of per-variable slots, aligned with the optimizer's trainable variables.
_SLOTS: dict[type, tuple[str, ...]] = {
    keras.optimizers.Optimizer: ("_accumulated_gradients", "_model_variables_moving_average"),
    keras.optimizers.SGD: ("momentums",),
    keras.optimizers.Adam: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.AdamW: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.RMSprop: ("_velocities", "_momentums", "_average_gradients"),
    keras.optimizers.Nadam: ("_momentums", "_velocities"),
    keras.optimizers.Lamb: ("_momentums", "_velocities"),
    keras.optimizers.Lion: ("_momentums",),
    keras.optimizers.Adamax: ("_m", "_u"),
    keras.optimizers.Adagrad: ("_accumulators",),
    keras.optimizers.Adadelta: ("_accumulated_grads", "_accumulated_delta_vars"),
    keras.optimizers.Ftrl: ("_accumulators", "_linears"),
}
# Not registered on purpose: Adafactor keeps factored (row/column) slots whose shapes differ
# from the variable's, so slicing them like the weight would be wrong.


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
    old_index = {id(v): i for i, v in enumerate(optimizer._trainable_variables)}
    new_index = {id(v): i for i, v in enumerate(new._trainable_variables)}
    for move in moves:
        i, j = old_index.get(id(move.old)), new_index.get(id(move.new))
        if i is None or j is None:
            continue
        for attribute in attributes:
            old_slots = getattr(optimizer, attribute, None) or []
            new_slots = getattr(new, attribute, None) or []
            if len(old_slots) != len(optimizer._trainable_variables) or not new_slots:
                continue
            if old_slots[i] is None or new_slots[j] is None:
                continue
            new_slots[j].assign(move.take(keras.ops.convert_to_numpy(old_slots[i])))
    return new

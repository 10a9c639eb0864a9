"""The engine's errors: one type and one message builder per condition. Every message names the
layer by its path (nested models joined by '/') and echoes the value it refuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class UnsupportedLayerError(ValueError):
    """A layer (or model) whose channels slimray cannot prune correctly; raised instead of
    guessing. `problem` is the reason alone, `operation` the layer as the user wrote it."""

    def __init__(self, path: str, problem: str, operation: str | None = None):
        self.path, self.problem, self.operation = path, problem, operation
        super().__init__(unsupported_layer_message(path, problem, operation))

    def __reduce__(self):  # rebuilt from its parts, not its message (Ray pickles errors)
        return (type(self), (self.path, self.problem, self.operation))


def unsupported_layer_message(path: str, problem: str, operation: str | None = None) -> str:
    """The one wording of a layer slimray cannot prune through, e.g. "Layer 'block/mix'
    (keras.layers.Reshape) mixes the channel axis with others: (6, 6, 8) -> (6, 48)"."""
    named = f"Layer '{path}'" + (f" ({operation})" if operation else "")
    return f"{named} {problem}"


class BlockedModelError(UnsupportedLayerError):
    """strict pruning refused a model; `kept_whole` lists every layer that would be kept whole."""

    def __init__(self, kept_whole: Sequence[Any]):
        self.kept_whole = list(kept_whole)
        self.path, self.operation = "", None
        self.problem = blocked_model_message(self.kept_whole)
        ValueError.__init__(self, self.problem)  # the whole model's message, not one layer's

    def __reduce__(self):  # rebuilt from its layers, not its message (Ray pickles errors)
        return (type(self), (self.kept_whole,))


def blocked_model_message(kept_whole: Sequence[Any]) -> str:
    """The one wording of a strict refusal: every layer kept whole (`KeptWhole.describe()`)."""
    listed = "; ".join(k.describe() for k in kept_whole)
    return (
        f"{len(kept_whole)} layer(s) cannot be pruned through, and strict pruning refuses the "
        f"model: {listed}. Without strict, their channels are kept whole and the rest is "
        "pruned; or teach slimray each class with slimray.pruning.register_layer."
    )

"""The layer-handler contract: what a handler tells the dependency graph, surgery and counting
about one layer class, the registry keyed by exact class, and the helpers every family shares.

Every hook receives the same arguments wherever it is called: the layer, its channel ids or keep
masks, `parts` (the ids or masks it named while tracing; empty when none) and `path`, the
layer's path in the model (nested models joined by '/'), which every message names. `trace` and
`flops` receive the path inside `call`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np

from slimray.pruning.errors import UnsupportedLayerError

Ids = np.ndarray  # atom id of every position along a tensor's channel (last) axis


@dataclass(frozen=True)
class Call:
    """One call of a layer: its path, the shapes it saw (batch dimension included, may be None)
    and those of its non-tensor operands (an op node's constants: `()` for a Python number)."""

    in_shapes: tuple[tuple[int | None, ...], ...]
    out_shapes: tuple[tuple[int | None, ...], ...]
    constants: tuple[tuple[int, ...], ...] = ()
    roles: tuple[str, ...] = ()  # the argument each input tensor was passed as ("query", ...)
    path: str = ""  # the layer's path in the model, e.g. "block/inner_conv"

    def inputs_by_role(self, inputs: list[Ids]) -> dict[str, list[Ids]]:
        """The inputs' channel ids grouped by the argument they were passed as."""
        out: dict[str, list[Ids]] = {}
        for role, ids in zip(self.roles, inputs, strict=True):
            out.setdefault(role, []).append(ids)
        return out


class Tracer(Protocol):
    """What a handler's `trace` may ask of the dependency graph."""

    def fresh(self, layer: Any, size: int, part: str | None = None) -> Ids: ...
    def name(self, layer: Any, part: str, ids: Ids) -> None: ...
    def fresh_output(self, layer: Any, index: int, size: int) -> Ids: ...
    def union(self, a: Ids, b: Ids, where: str) -> None: ...
    def fix(self, ids: Ids) -> None: ...


class LayerHandler(ABC):
    """Describes one layer class to the dependency graph, surgery and counting.

    `mixes_channels` marks layers whose outputs are new channels built from all inputs
    (Conv, Dense): their inputs are where activation-based criteria look.
    `exact` says whether removing channels through the layer preserves its function exactly
    (dead channels in, dead channels out). A handler with `exact = False` (LayerNormalization,
    whose statistics change) says per pruning, in `is_exact`, whether this one changed it.
    """

    mixes_channels = False
    exact = True

    @abstractmethod
    def trace(self, layer: Any, inputs: list[Ids], call: Call, graph: Tracer) -> list[Ids]:
        """The channel ids of the call's outputs, given its inputs'. Ties channels that must go
        together (`graph.union`), keeps whole those that cannot go (`graph.fix`), creates new
        ones (`graph.fresh`) and names inner or per-role ids (`graph.name`, `parts` later).
        Raises `UnsupportedLayerError` (see `refuse`) for a layer it cannot prune through."""

    def param_axes(
        self, layer: Any, in_ids: list[Ids], out_ids: list[Ids], *, parts: dict[str, Ids], path: str
    ) -> dict[str, dict[int, Ids]]:
        """`{variable key: {axis: atom ids of the positions along that axis}}`; the key is the
        variable's path inside the layer (`weight_key`)."""
        return {}

    def resize(
        self,
        config: dict,
        in_keep: list[np.ndarray],
        out_keep: list[np.ndarray],
        *,
        parts: dict[str, np.ndarray],
        path: str,
    ) -> dict:
        """The layer config after pruning (keep masks are boolean, per position)."""
        return config

    def is_exact(
        self,
        layer: Any,
        in_keep: list[np.ndarray],
        out_keep: list[np.ndarray],
        *,
        parts: dict[str, np.ndarray],
        path: str,
    ) -> bool:
        """Whether this pruning of the layer preserves its function exactly: always for an
        `exact` handler; otherwise only when none of its input channels went."""
        return self.exact or all(np.all(keep) for keep in in_keep)

    def flops(self, layer: Any, call: Call) -> int:
        """Floating-point operations per sample for one call (multiply-add counts as 2)."""
        return 0


class KeepWholeHandler(LayerHandler):
    """A layer (or op node) slimray cannot prune through: its input channels are kept whole and
    its outputs are new channels, also kept whole; its weights and config are left as they are.
    Everything else in the model is still pruned (partial pruning)."""

    def __init__(self, reason: str):
        self.reason = reason

    def trace(self, layer: Any, inputs: list[Ids], call: Call, graph: Tracer) -> list[Ids]:
        for ids in inputs:
            graph.fix(ids)
        sizes = [shape[-1] if shape else 1 for shape in call.out_shapes]
        outs = [graph.fresh_output(layer, i, size) for i, size in enumerate(sizes)]
        for ids in outs:
            graph.fix(ids)
        return outs


# ---------------------------------------------------------------- registry

_HANDLERS: dict[type, LayerHandler] = {}


def register_layer(layer_class: type, handler: LayerHandler) -> None:
    """Teach slimray a layer class: one call, e.g. `register_layer(MyConv, ConvHandler())`."""
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer needs a class. Received: {layer_class!r}")
    if not isinstance(handler, LayerHandler):
        raise TypeError(f"register_layer needs a LayerHandler. Received: {handler!r}")
    _HANDLERS[layer_class] = handler


def handler_for(layer: Any, path: str) -> LayerHandler:
    """The handler registered for exactly this layer's class, or a clear error."""
    handler = _HANDLERS.get(type(layer))
    if handler is None:
        raise refuse(
            layer,
            path,
            "is not supported by the channel pruner. Register a handler for it with "
            "slimray.pruning.register_layer(<class>, <LayerHandler>).",
        )
    return handler


def registered_classes() -> list[type]:
    return list(_HANDLERS)


# ---------------------------------------------------------------- shared helpers


def describe_operation(op: Any) -> str:
    """How the user wrote `op`: `keras.layers.LSTM`, `my_pkg.MyLayer`, or for an op node (an
    operation, not a layer, e.g. `x + 3.0`) `keras.ops.add`."""
    cls = type(op)
    if isinstance(op, keras.layers.Layer):
        public = getattr(keras.layers, cls.__name__, None)
        return f"keras.layers.{cls.__name__}" if public is cls else f"{cls.__module__}.{cls.__qualname__}"
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in cls.__name__).lstrip("_")
    return f"keras.ops.{snake}" if hasattr(keras.ops, snake) else f"{cls.__module__}.{cls.__qualname__}"


def refuse(layer: Any, path: str, problem: str) -> UnsupportedLayerError:
    """The error for a layer slimray cannot prune through; `problem` echoes the value refused,
    e.g. `refuse(layer, call.path, f"uses data_format={fmt!r}; ...")`."""
    return UnsupportedLayerError(path, problem, describe_operation(layer))


def weight_key(layer: Any, variable: Any) -> str:
    """A variable's name inside its layer: its path below the layer's (`kernel`, or
    `query/kernel` in a MultiHeadAttention, whose sublayers repeat the bare names)."""
    prefix = f"{getattr(layer, 'path', layer.name)}/"
    path = getattr(variable, "path", "")
    return path[len(prefix) :] if path.startswith(prefix) else variable.name


def require_channels_last(layer: Any, path: str) -> None:
    """Refuse a layer whose `data_format` puts the channels anywhere but last."""
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise refuse(layer, path, f"uses data_format={fmt!r}; only channels_last is supported.")


def elements(shape: Sequence[int | None]) -> int:
    """Elements per sample (batch axis excluded); unknown axes count as 1."""
    return math.prod(d for d in shape[1:] if d is not None)


def spatial(shape: Sequence[int | None]) -> int:
    """Positions per sample: every axis but the batch and the channels; unknown ones count as 1."""
    return math.prod(d for d in shape[1:-1] if d is not None)


def keep_count(mask: np.ndarray) -> int:
    """How many positions a boolean keep mask keeps."""
    return int(np.count_nonzero(mask))

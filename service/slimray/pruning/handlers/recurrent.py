"""Recurrent layers pruned by units: LSTM, GRU, SimpleRNN, and Bidirectional around them. A
unit owns one column of every gate block (at gate * units + u) and a row of the recurrent kernel;
with them all zero its state stays zero, so removing the unit changes no output."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from slimray.pruning.handlers.base import Ids, LayerHandler, keep_count, refuse, register_layer, weight_key

GATES: dict[type, int] = {keras.layers.LSTM: 4, keras.layers.GRU: 3, keras.layers.SimpleRNN: 1}


def require_supported_rnn(layer: Any, rnn: Any, path: str) -> int:
    """The gate count of `rnn` (the layer itself, or a direction of a Bidirectional `layer`);
    refuses a recurrent layer it cannot prune by units."""
    gates = GATES.get(type(rnn))
    if gates is None:
        raise refuse(layer, path, f"wraps {type(rnn).__name__}; only LSTM, GRU and SimpleRNN are supported")
    if rnn.stateful:
        raise refuse(layer, path, "is stateful (stateful=True): its carried states would keep every unit")
    return gates


def unit_axes(owner: Any, rnn: Any, in_ids: Ids, units: Ids) -> dict[str, dict[int, Ids]]:
    """Where `rnn`'s units (and its input channels) sit in its cell's variables, keyed inside
    `owner` (the RNN itself, or the Bidirectional holding it)."""
    cell, columns = rnn.cell, np.tile(units, GATES[type(rnn)])
    axes = {
        weight_key(owner, cell.kernel): {0: in_ids, 1: columns},
        weight_key(owner, cell.recurrent_kernel): {0: units, 1: columns},
    }
    if cell.use_bias:  # GRU with reset_after keeps two bias rows: (2, 3 * units)
        axes[weight_key(owner, cell.bias)] = {len(cell.bias.shape) - 1: columns}
    return axes


def unit_flops(rnn: Any, in_shape: tuple, units: int) -> int:
    """Per sample: every timestep multiplies input and state into each gate block."""
    steps = in_shape[1] or 1
    return 2 * steps * (in_shape[-1] + units) * GATES[type(rnn)] * units


class RecurrentHandler(LayerHandler):
    """LSTM/GRU/SimpleRNN: `units` are new channels; initial states carry the same units."""

    mixes_channels = True

    def trace(self, layer, inputs, call, graph):
        require_supported_rnn(layer, layer, call.path)
        units = graph.fresh(layer, layer.units)
        roles = call.roles or ("sequences",) + ("initial_state",) * (len(inputs) - 1)
        for role, ids in zip(roles[1:], inputs[1:], strict=True):
            if role == "initial_state":
                graph.union(units, ids, where=call.path)
            else:  # a mask: (batch, time), no channels
                graph.fix(ids)
        return [units] * len(call.out_shapes)  # the output, then any returned states

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        return unit_axes(layer, layer, in_ids[0], out_ids[0])

    def resize(self, config, in_keep, out_keep, *, parts, path):
        return {**config, "units": keep_count(out_keep[0])}

    def flops(self, layer, call):
        return unit_flops(layer, call.in_shapes[0], layer.units)


class BidirectionalHandler(LayerHandler):
    """Two RNNs over the same input: each direction's units are their own channels. `concat`
    stacks them (forward first); `sum`, `ave` and `mul` tie unit u of both directions."""

    mixes_channels = True
    TIED = frozenset({"sum", "ave", "mul"})

    def trace(self, layer, inputs, call, graph):
        for rnn in (layer.forward_layer, layer.backward_layer):
            require_supported_rnn(layer, rnn, call.path)
        if len(inputs) > 1 or layer.return_state:
            raise refuse(
                layer,
                call.path,
                f"takes initial states or returns them ({len(inputs)} inputs, "
                f"return_state={layer.return_state}): not supported",
            )
        forward = graph.fresh(layer, layer.forward_layer.units, part="forward")
        backward = graph.fresh(layer, layer.backward_layer.units, part="backward")
        if layer.merge_mode == "concat":
            return [np.concatenate([forward, backward])]
        if layer.merge_mode in self.TIED:
            graph.union(forward, backward, where=call.path)
            return [forward]
        return [forward, backward]  # merge_mode=None: one output per direction

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        return {
            **unit_axes(layer, layer.forward_layer, in_ids[0], parts["forward"]),
            **unit_axes(layer, layer.backward_layer, in_ids[0], parts["backward"]),
        }

    def resize(self, config, in_keep, out_keep, *, parts, path):
        config = dict(config)
        for key, part in (("layer", "forward"), ("backward_layer", "backward")):
            inner = {k: v for k, v in config[key].items() if k != "build_config"}  # old shapes
            inner["config"] = {**inner["config"], "units": keep_count(parts[part])}
            config[key] = inner
        return config

    def flops(self, layer, call):
        return sum(unit_flops(rnn, call.in_shapes[0], rnn.units)
                   for rnn in (layer.forward_layer, layer.backward_layer))  # fmt: skip


for _cls in GATES:
    register_layer(_cls, RecurrentHandler())
register_layer(keras.layers.Bidirectional, BidirectionalHandler())

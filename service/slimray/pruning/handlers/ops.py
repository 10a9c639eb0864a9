"""Keras op nodes: the operations a functional model written with operators or `keras.ops`
holds (`x + 3.0`, `x * y`, `keras.ops.sigmoid(x)`) where a layer would be."""

from __future__ import annotations

from slimray.pruning import keras_internals
from slimray.pruning.handlers.base import LayerHandler, elements, refuse, register_layer


class ElementwiseOpHandler(LayerHandler):
    """An element-wise op node (hard-swish's `x * relu6(x + 3) / 6`): operands carrying the
    channels are tied like `Add`; an operand broadcast over channels (last axis 1) and every
    constant must be the same for all channels (a number, or last axis 1), since a per-channel
    constant cannot be sliced."""

    def __init__(self, flops_per_element: int = 1):
        self.flops_per_element = flops_per_element

    def trace(self, layer, inputs, call, graph):
        channels = call.out_shapes[0][-1] if call.out_shapes[0] else None
        for shape in call.constants:
            if shape and shape[-1] != 1:
                raise refuse(layer, call.path, f"has a per-channel constant of shape {shape}")
        carrying = [
            ids for ids, shape in zip(inputs, call.in_shapes, strict=True) if shape and shape[-1] == channels
        ]
        if not carrying:
            shapes = list(call.in_shapes)
            raise refuse(layer, call.path, f"changes the channel count: {shapes} -> {call.out_shapes[0]}")
        for ids, shape in zip(inputs, call.in_shapes, strict=True):
            if shape and shape[-1] == channels:
                graph.union(carrying[0], ids, where=call.path)
            else:
                graph.fix(ids)  # broadcast across channels (last axis 1)
        return [carrying[0]]

    def flops(self, layer, call):
        return self.flops_per_element * elements(call.out_shapes[0])


for _op in keras_internals.elementwise_op_classes():
    register_layer(_op, ElementwiseOpHandler())

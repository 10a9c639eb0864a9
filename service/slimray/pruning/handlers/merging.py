"""Merging layers: element-wise merges tie their inputs' channels; a channel concatenation
stacks them at offsets."""

from __future__ import annotations

import keras
import numpy as np

from slimray.pruning import keras_internals
from slimray.pruning.handlers.base import LayerHandler, elements, register_layer


class ElementwiseMergeHandler(LayerHandler):
    """Add/Subtract/Multiply/Average/Maximum/Minimum: the inputs' channels are tied together."""

    def trace(self, layer, inputs, call, graph):
        sizes = {len(ids) for ids in inputs}
        if len(sizes) > 1:  # broadcasting over channels: nothing here can be removed
            for ids in inputs:
                graph.fix(ids)
            return [max(inputs, key=len)]
        for other in inputs[1:]:
            graph.union(inputs[0], other, where=call.path)
        return [inputs[0]]

    def flops(self, layer, call):
        return (len(call.in_shapes) - 1) * elements(call.out_shapes[0])


class ConcatenateHandler(LayerHandler):
    """Channel concatenation stacks the inputs' channels at offsets; other axes tie them."""

    def trace(self, layer, inputs, call, graph):
        rank = len(call.out_shapes[0])
        if layer.axis in (-1, rank - 1):
            return [np.concatenate(inputs)]
        for other in inputs[1:]:
            graph.union(inputs[0], other, where=call.path)
        return [inputs[0]]


L = keras.layers
for _cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
    register_layer(_cls, ElementwiseMergeHandler())
register_layer(L.Concatenate, ConcatenateHandler())
if (_scaled_sum := keras_internals.application_layers().get("CustomScaleLayer")) is not None:
    register_layer(_scaled_sum, ElementwiseMergeHandler())  # InceptionResNetV2's scaled residual sum

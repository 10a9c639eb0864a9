"""Convolutions: plain and grouped, transposed, depthwise and separable."""

from __future__ import annotations

import math

import keras
import numpy as np

from slimray.pruning.handlers.base import (
    LayerHandler,
    elements,
    keep_count,
    register_layer,
    require_channels_last,
    spatial,
)
from slimray.pruning.handlers.core import ProducerHandler


class ConvHandler(ProducerHandler):
    """Conv1D/2D/3D: kernel is (*window, in / groups, out). A grouped convolution is pruned by
    whole groups: a group's input channels are tied into one prunable unit, and its `filters /
    groups` outputs (at g * m + k) go with it. Depthwise written as `groups=C` (ConvNeXt) is the
    case of one input channel per group: each input channel is pruned with its outputs."""

    def trace(self, layer, inputs, call, graph):
        groups = getattr(layer, "groups", 1)
        if groups == 1:
            return super().trace(layer, inputs, call, graph)
        require_channels_last(layer, call.path)
        per_group = call.in_shapes[0][-1] // groups
        first = inputs[0][::per_group]  # the first input channel of each group
        for offset in range(1, per_group):
            graph.union(first, inputs[0][offset::per_group], where=call.path)
        return [np.repeat(first, layer.filters // groups)]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        nd = len(layer.kernel.shape)
        if getattr(layer, "groups", 1) == 1:
            axes = {"kernel": {nd - 2: in_ids[0], nd - 1: out_ids[0]}}
        else:  # whole groups: the kernel's input axis (a position within a group) stays
            axes = {"kernel": {nd - 1: out_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def resize(self, config, in_keep, out_keep, *, parts, path):
        config = super().resize(config, in_keep, out_keep, parts=parts, path=path)
        if config.get("groups", 1) != 1:  # whole groups went: the same share of the inputs
            config["groups"] = config["groups"] * keep_count(in_keep[0]) // len(in_keep[0])
        return config

    def flops(self, layer, call):
        cin = call.in_shapes[0][-1] // getattr(layer, "groups", 1)
        return 2 * math.prod(layer.kernel_size) * cin * elements(call.out_shapes[0])


class ConvTransposeHandler(ConvHandler):
    """Conv1D/2D/3DTranspose: kernel is (*window, out, in)."""

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        nd = len(layer.kernel.shape)
        axes = {"kernel": {nd - 2: out_ids[0], nd - 1: in_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        cout = call.out_shapes[0][-1]
        return 2 * math.prod(layer.kernel_size) * cout * elements(call.in_shapes[0])


class DepthwiseConvHandler(LayerHandler):
    """Depthwise: each input channel yields `depth_multiplier` outputs at c * m + k."""

    def trace(self, layer, inputs, call, graph):
        require_channels_last(layer, call.path)
        return [np.repeat(inputs[0], layer.depth_multiplier)]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        nd = len(layer.kernel.shape)
        axes = {"kernel": {nd - 2: in_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        return 2 * math.prod(layer.kernel_size) * elements(call.out_shapes[0])


class SeparableConvHandler(ProducerHandler):
    """Depthwise then pointwise: input channels index the depthwise kernel and, repeated
    `depth_multiplier` times, the pointwise kernel's input axis."""

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        nd = len(layer.depthwise_kernel.shape)
        mid = np.repeat(in_ids[0], layer.depth_multiplier)
        axes = {
            "depthwise_kernel": {nd - 2: in_ids[0]},
            "pointwise_kernel": {nd - 2: mid, nd - 1: out_ids[0]},
        }
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        cin = call.in_shapes[0][-1]
        m = layer.depth_multiplier
        depthwise = 2 * math.prod(layer.kernel_size) * cin * m * spatial(call.out_shapes[0])
        pointwise = 2 * cin * m * elements(call.out_shapes[0])
        return depthwise + pointwise


L = keras.layers
for _cls in (L.Conv1D, L.Conv2D, L.Conv3D):
    register_layer(_cls, ConvHandler())
for _cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
    register_layer(_cls, ConvTransposeHandler())
for _cls in (L.DepthwiseConv1D, L.DepthwiseConv2D):
    register_layer(_cls, DepthwiseConvHandler())
for _cls in (L.SeparableConv1D, L.SeparableConv2D):
    register_layer(_cls, SeparableConvHandler())

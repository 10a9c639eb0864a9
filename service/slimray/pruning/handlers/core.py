"""Core layers: channels passed through (activations, dropout, pooling, padding, reshaping) and
the layers that make new channels from all of theirs (Dense, Embedding)."""

from __future__ import annotations

import math

import keras
import numpy as np

from slimray.pruning.handlers.base import (
    LayerHandler,
    elements,
    keep_count,
    refuse,
    register_layer,
    require_channels_last,
    spatial,
)


class PassThroughHandler(LayerHandler):
    """Channels go through unchanged: activations, dropout, pooling, padding, cropping, resizing."""

    def __init__(self, flops_per_element: int = 0, window_attr: str | None = None):
        self.flops_per_element = flops_per_element
        self.window_attr = window_attr

    def trace(self, layer, inputs, call, graph):
        require_channels_last(layer, call.path)
        return [inputs[0]]

    def flops(self, layer, call):
        per = self.flops_per_element
        if self.window_attr:
            per = math.prod(getattr(layer, self.window_attr))
        return per * elements(call.out_shapes[0])


class ChannelMixingPassThroughHandler(PassThroughHandler):
    """Same shape out as in, but every output depends on all channels (softmax): never pruned."""

    def trace(self, layer, inputs, call, graph):
        graph.fix(inputs[0])
        return [inputs[0]]


class ActivationHandler(PassThroughHandler):
    """`Activation`: pass-through, except softmax-like functions that mix channels."""

    MIXING = frozenset({"softmax", "log_softmax"})

    def trace(self, layer, inputs, call, graph):
        name = keras.activations.serialize(layer.activation)
        if isinstance(name, dict):
            name = name.get("config", name.get("class_name"))
        if name in self.MIXING:
            graph.fix(inputs[0])
        return [inputs[0]]


class RescalingHandler(PassThroughHandler):
    """`x * scale + offset`: scalars pass channels through; per-channel values keep them."""

    def trace(self, layer, inputs, call, graph):
        per_channel = any(np.size(v) > 1 for v in (layer.scale, layer.offset))
        if per_channel:
            graph.fix(inputs[0])
        return [inputs[0]]


class PReLUHandler(PassThroughHandler):
    """A learned slope per channel (when `alpha` has one) is sliced with the channels."""

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        alpha = layer.alpha
        if alpha.shape[-1] == len(in_ids[0]) and len(in_ids[0]) != 1:
            return {"alpha": {len(alpha.shape) - 1: in_ids[0]}}
        return {}


class ReshapeHandler(LayerHandler):
    """`Reshape` that keeps the channel axis last and whole (squeeze-and-excite's `(1, 1, C)`, a
    head's `(classes,)`): row-major order leaves every channel where it was. Any other reshape
    mixes channels with other axes and is refused."""

    def trace(self, layer, inputs, call, graph):
        before, after = call.in_shapes[0], call.out_shapes[0]
        if before[-1] != after[-1]:
            raise refuse(layer, call.path, f"mixes the channel axis with others: {before[1:]} -> {after[1:]}")
        return [inputs[0]]

    def resize(self, config, in_keep, out_keep, *, parts, path):
        target = list(config["target_shape"])
        if target[-1] != -1:
            target[-1] = keep_count(out_keep[0])
        return {**config, "target_shape": tuple(target)}


class PermuteHandler(PassThroughHandler):
    """`Permute` that leaves the channel axis last: channels pass through; any other is refused."""

    def trace(self, layer, inputs, call, graph):
        dims = tuple(layer.dims)
        if dims[-1] != len(dims):
            raise refuse(layer, call.path, f"moves the channel axis: dims={dims}")
        return [inputs[0]]


class FlattenHandler(LayerHandler):
    """channels_last Flatten: channel c lands at every position s * C + c."""

    def trace(self, layer, inputs, call, graph):
        require_channels_last(layer, call.path)
        shape = call.in_shapes[0]
        if any(d is None for d in shape[1:-1]):
            raise refuse(
                layer, call.path, f"has unknown spatial size {shape}; cannot map channels to flat positions."
            )
        return [np.tile(inputs[0], spatial(shape))]


class ProducerHandler(LayerHandler):
    """Layers that create new output channels from all input channels; `width_key` names the
    attribute and config entry holding their count."""

    mixes_channels = True
    width_key = "filters"

    def out_size(self, layer) -> int:
        return int(getattr(layer, self.width_key))

    def trace(self, layer, inputs, call, graph):
        require_channels_last(layer, call.path)
        return [graph.fresh(layer, self.out_size(layer))]

    def resize(self, config, in_keep, out_keep, *, parts, path):
        return {**config, self.width_key: keep_count(out_keep[0])}


class DenseHandler(ProducerHandler):
    width_key = "units"

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        axes = {"kernel": {0: in_ids[0], 1: out_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        return 2 * elements(call.in_shapes[0]) * layer.units


class EmbeddingHandler(ProducerHandler):
    """Token ids in, `output_dim` new channels out."""

    mixes_channels = False
    width_key = "output_dim"

    def trace(self, layer, inputs, call, graph):
        return [graph.fresh(layer, layer.output_dim)]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        return {"embeddings": {1: out_ids[0]}}


L = keras.layers
_PASS_THROUGH = [
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise,
    L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization, L.Identity,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
]  # fmt: skip
for _cls in _PASS_THROUGH:
    register_layer(_cls, PassThroughHandler())
for _cls in (L.ReLU, L.LeakyReLU, L.ELU):
    register_layer(_cls, PassThroughHandler(flops_per_element=1))
for _cls in (
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
    L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
):  # fmt: skip
    register_layer(_cls, PassThroughHandler(window_attr="pool_size"))
register_layer(L.Activation, ActivationHandler(flops_per_element=1))
register_layer(L.Softmax, ChannelMixingPassThroughHandler(flops_per_element=3))
register_layer(L.PReLU, PReLUHandler(flops_per_element=2))
register_layer(L.Rescaling, RescalingHandler(flops_per_element=2))
register_layer(L.Flatten, FlattenHandler())
register_layer(L.Reshape, ReshapeHandler())
register_layer(L.Permute, PermuteHandler())
register_layer(L.Dense, DenseHandler())
register_layer(L.Embedding, EmbeddingHandler())

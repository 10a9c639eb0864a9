"""Normalization and per-channel scale layers: BatchNormalization, LayerNormalization,
Normalization, and layers that scale or shift each channel by its own value (ConvNeXt's
`LayerScale`, a user's, registered with `register_scale_layer`)."""

from __future__ import annotations

import keras
import numpy as np

from slimray.pruning import keras_internals
from slimray.pruning.handlers.base import keep_count, refuse, register_layer, weight_key
from slimray.pruning.handlers.core import PassThroughHandler

NORMALIZED = "normalized"  # LayerNormalization's part: the channels it normalizes over


class BatchNormalizationHandler(PassThroughHandler):
    """Per-channel scale, shift and moving statistics, sliced with the channels."""

    def __init__(self):
        super().__init__(flops_per_element=2)

    def trace(self, layer, inputs, call, graph):
        rank = len(call.in_shapes[0])
        if layer.axis not in (-1, rank - 1):
            raise refuse(
                layer, call.path, f"normalizes axis={layer.axis}; only the last (channel) axis is supported."
            )
        return [inputs[0]]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        return {weight_key(layer, w): {0: in_ids[0]} for w in layer.weights}


class PerChannelHandler(PassThroughHandler):
    """A layer that scales (or shifts) each channel by its own learned value, like ConvNeXt's
    `LayerScale`: every variable whose last axis is the channel axis is sliced with it, and
    `size_key` (e.g. "projection_dim") names the config entry holding the channel count."""

    def __init__(self, size_key: str | None = None, flops_per_element: int = 1):
        super().__init__(flops_per_element=flops_per_element)
        self.size_key = size_key

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        channels = len(in_ids[0])
        return {weight_key(layer, w): {len(w.shape) - 1: in_ids[0]} for w in layer.weights
                if len(w.shape) >= 1 and w.shape[-1] == channels}  # fmt: skip

    def resize(self, config, in_keep, out_keep, *, parts, path):
        if self.size_key is None:
            return config
        return {**config, self.size_key: keep_count(in_keep[0])}


def register_scale_layer(layer_class: type, size_key: str | None = None) -> None:
    """Teach slimray a per-channel scale/shift layer in one call, e.g.
    `register_scale_layer(LayerScale, size_key="projection_dim")`: channels pass through and
    each variable's channel axis (its last) is sliced with them."""
    register_layer(layer_class, PerChannelHandler(size_key))


class NormalizationHandler(PerChannelHandler):
    """`Normalization` over the channel axis: its mean and variance (adapted variables, or
    constants given in the config) are sliced with the channels."""

    def __init__(self):
        super().__init__(flops_per_element=2)

    def trace(self, layer, inputs, call, graph):
        rank = len(call.in_shapes[0])
        if tuple(layer.axis) not in ((-1,), (rank - 1,)):
            raise refuse(
                layer,
                call.path,
                f"normalizes axis={layer.axis}; only the last (channel) axis alone is supported.",
            )
        return [inputs[0]]

    def resize(self, config, in_keep, out_keep, *, parts, path):
        config = dict(config)
        for key in ("mean", "variance"):
            value = config.get(key)
            if value is not None and np.ndim(value) >= 1 and np.shape(value)[-1] == len(in_keep[0]):
                config[key] = np.asarray(value)[..., in_keep[0]].tolist()
        return config


class LayerNormalizationHandler(PassThroughHandler):
    """Scale/shift per channel when the channel axis is normalized (part "normalized").

    Removing channels the layer normalizes over changes its mean and variance, so that pruning
    is structural but not function-preserving: `exact = False`, and `is_exact` is false exactly
    when some of those channels went. Normalizing other axes only, it is exact.
    """

    exact = False

    def __init__(self):
        super().__init__(flops_per_element=5)

    def trace(self, layer, inputs, call, graph):
        rank = len(call.in_shapes[0])
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if rank - 1 in [a % rank for a in axes]:
            graph.name(layer, NORMALIZED, inputs[0])
        return [inputs[0]]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        if NORMALIZED not in parts:
            return {}
        return {weight_key(layer, w): {len(w.shape) - 1: in_ids[0]} for w in layer.weights}

    def is_exact(self, layer, in_keep, out_keep, *, parts, path):
        return NORMALIZED not in parts or bool(np.all(parts[NORMALIZED]))


L = keras.layers
register_layer(L.BatchNormalization, BatchNormalizationHandler())
register_layer(L.LayerNormalization, LayerNormalizationHandler())
register_layer(L.Normalization, NormalizationHandler())
if (_layer_scale := keras_internals.application_layers().get("LayerScale")) is not None:
    register_scale_layer(_layer_scale, size_key="projection_dim")  # ConvNeXt's residual scale

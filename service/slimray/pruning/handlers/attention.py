"""MultiHeadAttention pruned by whole heads: a head owns its slice of the query, key, value (and
gate) projections and its rows of the output projection. With them all zero the head's values
are zero, so it adds nothing to the output and removing it changes no output."""

from __future__ import annotations

import keras

from slimray.pruning import keras_internals
from slimray.pruning.handlers.base import (
    LayerHandler,
    keep_count,
    refuse,
    register_layer,
    spatial,
    weight_key,
)

ROLES = ("query", "value", "key")


class MultiHeadAttentionHandler(LayerHandler):
    """Heads are new channels (part "heads"). The output has the query's channels unless
    `output_shape` is set; then they are new channels of the output projection."""

    mixes_channels = True

    def trace(self, layer, inputs, call, graph):
        if not call.roles:
            raise refuse(layer, call.path, "was called so that its inputs cannot be told apart (no roles)")
        if len(call.out_shapes) > 1:
            raise refuse(
                layer, call.path, f"returns its attention scores, indexed by head: outputs {call.out_shapes}"
            )
        by_role = call.inputs_by_role(inputs)
        for role, ids in zip(call.roles, inputs, strict=True):
            if role in ROLES:
                graph.name(layer, role, ids)
            else:  # masks: positions, not channels
                graph.fix(ids)
        if "key" not in by_role:
            graph.name(layer, "key", by_role["value"][0])
        graph.fresh(layer, layer.num_heads, part="heads")
        output_shape = keras_internals.attention_output_shape(layer)
        if output_shape:
            if len(output_shape) != 1:
                raise refuse(
                    layer, call.path, f"has output_shape={output_shape}; only one output axis is supported"
                )
            return [graph.fresh(layer, output_shape[-1], part="output")]
        return [by_role["query"][0]]

    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        heads = parts["heads"]
        axes = {}
        # each projection: kernel (channels, heads, head size), bias (heads, size)
        for dense, role in keras_internals.attention_projections(layer):
            axes[weight_key(layer, dense.kernel)] = {0: parts[role], 1: heads}
            if dense.bias is not None:
                axes[weight_key(layer, dense.bias)] = {0: heads}
        out = layer.output_dense  # kernel (heads, value size, channels), bias (channels,)
        axes[weight_key(layer, out.kernel)] = {0: heads, 2: out_ids[0]}
        if out.bias is not None:
            axes[weight_key(layer, out.bias)] = {0: out_ids[0]}
        return axes

    def resize(self, config, in_keep, out_keep, *, parts, path):
        config = {**config, "num_heads": keep_count(parts["heads"])}
        if config.get("output_shape"):
            config["output_shape"] = (keep_count(out_keep[0]),)
        return config

    def flops(self, layer, call):
        shapes = dict(zip(call.roles, call.in_shapes, strict=True)) if call.roles else {}
        query = shapes.get("query", call.in_shapes[0])
        value = shapes.get("value", query)
        key = shapes.get("key", value)
        t, s = spatial(query), spatial(value)
        h, kd, vd = layer.num_heads, layer.key_dim, layer.value_dim
        out = call.out_shapes[0][-1]
        projections = t * query[-1] * kd + s * key[-1] * kd + s * value[-1] * vd
        gate = t * query[-1] * vd if keras_internals.attention_uses_gate(layer) else 0
        attention = t * s * (kd + vd)
        return 2 * h * (projections + gate + attention + t * vd * out) + 3 * h * t * s  # + softmax


register_layer(keras.layers.MultiHeadAttention, MultiHeadAttentionHandler())

"""Per-layer-class knowledge: how channels flow through a layer, which weight axes they index,
how its config shrinks and what it costs. One registry keyed by exact layer class."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np

Ids = np.ndarray  # atom id of every position along a tensor's channel (last) axis


class UnsupportedLayerError(ValueError):
    """A layer whose channels slimray cannot prune correctly; raised instead of guessing."""


@dataclass(frozen=True)
class Call:
    """Shapes seen by one call of a layer (batch dimension included, may be None), and of its
    non-tensor operands (an op node's constants: `()` for a Python number)."""

    in_shapes: tuple[tuple[int | None, ...], ...]
    out_shapes: tuple[tuple[int | None, ...], ...]
    constants: tuple[tuple[int, ...], ...] = ()
    roles: tuple[str, ...] = ()  # the argument each input tensor was passed as ("query", ...)

    def inputs_by_role(self, inputs: list[Ids]) -> dict[str, list[Ids]]:
        """The inputs' channel ids grouped by the argument they were passed as."""
        out: dict[str, list[Ids]] = {}
        for role, ids in zip(self.roles, inputs, strict=True):
            out.setdefault(role, []).append(ids)
        return out


class Tracer(Protocol):
    def fresh(self, layer: Any, size: int, part: str | None = None) -> Ids: ...
    def name(self, layer: Any, part: str, ids: Ids) -> None: ...
    def fresh_output(self, layer: Any, index: int, size: int) -> Ids: ...
    def union(self, a: Ids, b: Ids, where: str) -> None: ...
    def fix(self, ids: Ids) -> None: ...


class LayerHandler:
    """Base handler: describes one layer class to the dependency graph and surgery.

    `mixes_channels` marks layers whose outputs are new channels built from all inputs
    (Conv, Dense): their inputs are where activation-based criteria look.
    """

    mixes_channels = False

    def trace(self, layer: Any, inputs: list[Ids], call: Call, graph: Tracer) -> list[Ids]:
        raise NotImplementedError

    def param_axes(self, layer: Any, in_ids: list[Ids], out_ids: list[Ids]) -> dict[str, dict]:
        """`{variable key: {axis: atom ids of the positions along that axis}}`; the key is the
        variable's path inside the layer (`weight_key`). A handler that named parts while tracing
        (`graph.fresh(layer, n, part)`, `graph.name`) also receives them as `parts=`."""
        return {}

    def resize(self, config: dict, in_keep: list[np.ndarray], out_keep: list[np.ndarray]) -> dict:
        """The layer config after pruning (keep masks are boolean, per position; a handler with
        named parts also receives `parts=` their keep masks)."""
        return config

    def flops(self, layer: Any, call: Call) -> int:
        """Floating-point operations per sample for one call (multiply-add counts as 2)."""
        return 0


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
        cls = type(layer)
        raise UnsupportedLayerError(
            f"Layer '{path}' of class {cls.__module__}.{cls.__qualname__} is not supported by the "
            "channel pruner. Register a handler for it with "
            "slimray.pruning.register_layer(<class>, <LayerHandler>)."
        )
    return handler


def registered_classes() -> list[type]:
    return list(_HANDLERS)


def weight_key(layer: Any, variable: Any) -> str:
    """A variable's name inside its layer: its path below the layer's (`kernel`, or
    `query/kernel` in a MultiHeadAttention, whose sublayers repeat the bare names)."""
    prefix = f"{getattr(layer, 'path', layer.name)}/"
    path = getattr(variable, "path", "")
    return path[len(prefix) :] if path.startswith(prefix) else variable.name


def describe_operation(op: Any) -> str:
    """How the user wrote `op`: `keras.layers.LSTM`, `my_pkg.MyLayer`, or for an op node (an
    operation, not a layer, e.g. `x + 3.0`) `keras.ops.add`."""
    cls = type(op)
    if isinstance(op, keras.layers.Layer):
        public = getattr(keras.layers, cls.__name__, None)
        return f"keras.layers.{cls.__name__}" if public is cls else f"{cls.__module__}.{cls.__qualname__}"
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in cls.__name__).lstrip("_")
    return f"keras.ops.{snake}" if hasattr(keras.ops, snake) else f"{cls.__module__}.{cls.__qualname__}"


class FrozenHandler(LayerHandler):
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


# ---------------------------------------------------------------- helpers


def _channels_last(layer: Any, name: str) -> None:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise UnsupportedLayerError(
            f"Layer '{name}' ({type(layer).__name__}) uses data_format={fmt!r}; "
            "only channels_last is supported."
        )


def _elements(shape: Sequence[int | None]) -> int:
    """Elements per sample (batch axis excluded); unknown axes count as 1."""
    return math.prod(d for d in shape[1:] if d is not None)


def _spatial(shape: Sequence[int | None]) -> int:
    return math.prod(d for d in shape[1:-1] if d is not None)


def _keep_count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


# ---------------------------------------------------------------- pass-through


class PassThroughHandler(LayerHandler):
    """Channels go through unchanged: activations, dropout, pooling, padding, cropping, resizing."""

    def __init__(self, flops_per_element: int = 0, window_attr: str | None = None):
        self.flops_per_element = flops_per_element
        self.window_attr = window_attr

    def trace(self, layer, inputs, call, graph):
        _channels_last(layer, layer.name)
        return [inputs[0]]

    def flops(self, layer, call):
        per = self.flops_per_element
        if self.window_attr:
            per = math.prod(getattr(layer, self.window_attr))
        return per * _elements(call.out_shapes[0])


class ReshapeHandler(LayerHandler):
    """`Reshape` that keeps the channel axis last and whole (squeeze-and-excite's `(1, 1, C)`, a
    head's `(classes,)`): row-major order leaves every channel where it was. Any other reshape
    mixes channels with other axes and is refused."""

    def trace(self, layer, inputs, call, graph):
        before, after = call.in_shapes[0], call.out_shapes[0]
        if before[-1] != after[-1]:
            raise UnsupportedLayerError(
                f"Reshape '{layer.name}' mixes the channel axis with others: {before[1:]} -> {after[1:]}"
            )
        return [inputs[0]]

    def resize(self, config, in_keep, out_keep):
        target = list(config["target_shape"])
        if target[-1] != -1:
            target[-1] = _keep_count(out_keep[0])
        return {**config, "target_shape": tuple(target)}


class PermuteHandler(PassThroughHandler):
    """`Permute` that leaves the channel axis last: channels pass through; any other is refused."""

    def trace(self, layer, inputs, call, graph):
        dims = tuple(layer.dims)
        if dims[-1] != len(dims):
            raise UnsupportedLayerError(f"Permute '{layer.name}' moves the channel axis: dims={dims}")
        return [inputs[0]]


class ElementwiseOpHandler(LayerHandler):
    """An element-wise Keras op node (`x + 3.0`, `x * y`, `keras.ops.sigmoid(x)`, hard-swish's
    `x * relu6(x + 3) / 6`): operands carrying the channels are tied like `Add`; an operand
    broadcast over channels (last axis 1) and every constant must be the same for all channels
    (a number, or last axis 1), since a per-channel constant cannot be sliced."""

    def __init__(self, flops_per_element: int = 1):
        self.flops_per_element = flops_per_element

    def trace(self, layer, inputs, call, graph):
        channels = call.out_shapes[0][-1] if call.out_shapes[0] else None
        for shape in call.constants:
            if shape and shape[-1] != 1:
                raise UnsupportedLayerError(
                    f"op node '{layer.name}' has a per-channel constant of shape {shape}"
                )
        carrying = [
            ids for ids, shape in zip(inputs, call.in_shapes, strict=True) if shape and shape[-1] == channels
        ]
        if not carrying:
            raise UnsupportedLayerError(f"op node '{layer.name}' changes the channel count")
        for ids, shape in zip(inputs, call.in_shapes, strict=True):
            if shape and shape[-1] == channels:
                graph.union(carrying[0], ids, where=layer.name)
            else:
                graph.fix(ids)  # broadcast across channels (last axis 1)
        return [carrying[0]]

    def flops(self, layer, call):
        return self.flops_per_element * _elements(call.out_shapes[0])


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
    def param_axes(self, layer, in_ids, out_ids):
        alpha = layer.alpha
        if alpha.shape[-1] == len(in_ids[0]) and len(in_ids[0]) != 1:
            return {"alpha": {len(alpha.shape) - 1: in_ids[0]}}
        return {}


class BatchNormalizationHandler(PassThroughHandler):
    """Per-channel scale, shift and moving statistics, sliced with the channels."""

    def __init__(self):
        super().__init__(flops_per_element=2)

    def trace(self, layer, inputs, call, graph):
        rank = len(call.in_shapes[0])
        if layer.axis not in (-1, rank - 1):
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' (BatchNormalization) normalizes axis={layer.axis}; "
                "only the last (channel) axis is supported."
            )
        return [inputs[0]]

    def param_axes(self, layer, in_ids, out_ids):
        return {weight_key(layer, w): {0: in_ids[0]} for w in layer.weights}


class PerChannelHandler(PassThroughHandler):
    """A layer that scales (or shifts) each channel by its own learned value, like ConvNeXt's
    `LayerScale`: every variable whose last axis is the channel axis is sliced with it, and
    `size_key` (e.g. "projection_dim") names the config entry holding the channel count."""

    def __init__(self, size_key: str | None = None, flops_per_element: int = 1):
        super().__init__(flops_per_element=flops_per_element)
        self.size_key = size_key

    def param_axes(self, layer, in_ids, out_ids):
        channels = len(in_ids[0])
        return {weight_key(layer, w): {len(w.shape) - 1: in_ids[0]} for w in layer.weights
                if len(w.shape) >= 1 and w.shape[-1] == channels}  # fmt: skip

    def resize(self, config, in_keep, out_keep):
        if self.size_key is None:
            return config
        return {**config, self.size_key: _keep_count(in_keep[0])}


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
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' (Normalization) normalizes axis={layer.axis}; only the last "
                "(channel) axis alone is supported."
            )
        return [inputs[0]]

    def resize(self, config, in_keep, out_keep):
        config = dict(config)
        for key in ("mean", "variance"):
            value = config.get(key)
            if value is not None and np.ndim(value) >= 1 and np.shape(value)[-1] == len(in_keep[0]):
                config[key] = np.asarray(value)[..., in_keep[0]].tolist()
        return config


class LayerNormalizationHandler(PassThroughHandler):
    """Scale/shift per channel when the channel axis is normalized.

    Removing channels changes the normalization statistics, so pruning through LayerNormalization
    is structural but not exactly function-preserving.
    """

    def __init__(self):
        super().__init__(flops_per_element=5)

    def param_axes(self, layer, in_ids, out_ids):
        shapes = getattr(layer, "_build_shapes_dict", None) or {}
        shape = next(iter(shapes.values()), None)
        if shape is None:
            raise UnsupportedLayerError(f"Layer '{layer.name}' (LayerNormalization) is not built.")
        rank = len(shape)
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if rank - 1 not in [a % rank for a in axes]:
            return {}
        return {weight_key(layer, w): {len(w.shape) - 1: in_ids[0]} for w in layer.weights}


# ---------------------------------------------------------------- merges


class ElementwiseMergeHandler(LayerHandler):
    """Add/Subtract/Multiply/Average/Maximum/Minimum: the inputs' channels are tied together."""

    def trace(self, layer, inputs, call, graph):
        sizes = {len(ids) for ids in inputs}
        if len(sizes) > 1:  # broadcasting over channels: nothing here can be removed
            for ids in inputs:
                graph.fix(ids)
            return [max(inputs, key=len)]
        for other in inputs[1:]:
            graph.union(inputs[0], other, where=layer.name)
        return [inputs[0]]

    def flops(self, layer, call):
        return (len(call.in_shapes) - 1) * _elements(call.out_shapes[0])


class ConcatenateHandler(LayerHandler):
    """Channel concatenation stacks the inputs' channels at offsets; other axes tie them."""

    def trace(self, layer, inputs, call, graph):
        rank = len(call.out_shapes[0])
        if layer.axis in (-1, rank - 1):
            return [np.concatenate(inputs)]
        for other in inputs[1:]:
            graph.union(inputs[0], other, where=layer.name)
        return [inputs[0]]


# ---------------------------------------------------------------- reshaping


class FlattenHandler(LayerHandler):
    """channels_last Flatten: channel c lands at every position s * C + c."""

    def trace(self, layer, inputs, call, graph):
        _channels_last(layer, layer.name)
        shape = call.in_shapes[0]
        if any(d is None for d in shape[1:-1]):
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' (Flatten) has unknown spatial size {shape}; "
                "cannot map channels to flat positions."
            )
        return [np.tile(inputs[0], _spatial(shape))]


# ---------------------------------------------------------------- producers


class _ProducerHandler(LayerHandler):
    """Layers that create new output channels from all input channels."""

    mixes_channels = True
    width_key = "filters"

    def out_size(self, layer) -> int:
        return int(getattr(layer, self.width_key))

    def trace(self, layer, inputs, call, graph):
        _channels_last(layer, layer.name)
        if getattr(layer, "groups", 1) != 1:
            raise UnsupportedLayerError(
                f"Layer '{layer.name}' ({type(layer).__name__}) has groups={layer.groups}; "
                "grouped convolutions are not supported."
            )
        return [graph.fresh(layer, self.out_size(layer))]

    def resize(self, config, in_keep, out_keep):
        return {**config, self.width_key: _keep_count(out_keep[0])}


class DenseHandler(_ProducerHandler):
    width_key = "units"

    def param_axes(self, layer, in_ids, out_ids):
        axes = {"kernel": {0: in_ids[0], 1: out_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        return 2 * _elements(call.in_shapes[0]) * layer.units


class ConvHandler(_ProducerHandler):
    """Conv1D/2D/3D: kernel is (*window, in / groups, out). A grouped convolution is pruned by
    whole groups: a group's input channels are tied into one prunable unit, and its `filters /
    groups` outputs (at g * m + k) go with it. Depthwise written as `groups=C` (ConvNeXt) is the
    case of one input channel per group: each input channel is pruned with its outputs."""

    def trace(self, layer, inputs, call, graph):
        groups = getattr(layer, "groups", 1)
        if groups == 1:
            return super().trace(layer, inputs, call, graph)
        _channels_last(layer, layer.name)
        per_group = call.in_shapes[0][-1] // groups
        first = inputs[0][::per_group]  # the first input channel of each group
        for offset in range(1, per_group):
            graph.union(first, inputs[0][offset::per_group], where=layer.name)
        return [np.repeat(first, layer.filters // groups)]

    def param_axes(self, layer, in_ids, out_ids):
        nd = len(layer.kernel.shape)
        if getattr(layer, "groups", 1) == 1:
            axes = {"kernel": {nd - 2: in_ids[0], nd - 1: out_ids[0]}}
        else:  # whole groups: the kernel's input axis (a position within a group) stays
            axes = {"kernel": {nd - 1: out_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def resize(self, config, in_keep, out_keep):
        config = super().resize(config, in_keep, out_keep)
        if config.get("groups", 1) != 1:  # whole groups went: the same share of the inputs
            config["groups"] = config["groups"] * _keep_count(in_keep[0]) // len(in_keep[0])
        return config

    def flops(self, layer, call):
        cin = call.in_shapes[0][-1] // getattr(layer, "groups", 1)
        return 2 * math.prod(layer.kernel_size) * cin * _elements(call.out_shapes[0])


class ConvTransposeHandler(ConvHandler):
    """Conv1D/2D/3DTranspose: kernel is (*window, out, in)."""

    def param_axes(self, layer, in_ids, out_ids):
        nd = len(layer.kernel.shape)
        axes = {"kernel": {nd - 2: out_ids[0], nd - 1: in_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        cout = call.out_shapes[0][-1]
        return 2 * math.prod(layer.kernel_size) * cout * _elements(call.in_shapes[0])


class DepthwiseConvHandler(LayerHandler):
    """Depthwise: each input channel yields `depth_multiplier` outputs at c * m + k."""

    def trace(self, layer, inputs, call, graph):
        _channels_last(layer, layer.name)
        return [np.repeat(inputs[0], layer.depth_multiplier)]

    def param_axes(self, layer, in_ids, out_ids):
        nd = len(layer.kernel.shape)
        axes = {"kernel": {nd - 2: in_ids[0]}}
        if layer.use_bias:
            axes["bias"] = {0: out_ids[0]}
        return axes

    def flops(self, layer, call):
        return 2 * math.prod(layer.kernel_size) * _elements(call.out_shapes[0])


class SeparableConvHandler(_ProducerHandler):
    """Depthwise then pointwise: input channels index the depthwise kernel and, repeated
    `depth_multiplier` times, the pointwise kernel's input axis."""

    def param_axes(self, layer, in_ids, out_ids):
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
        depthwise = 2 * math.prod(layer.kernel_size) * cin * m * _spatial(call.out_shapes[0])
        pointwise = 2 * cin * m * _elements(call.out_shapes[0])
        return depthwise + pointwise


class EmbeddingHandler(_ProducerHandler):
    """Token ids in, `output_dim` new channels out."""

    mixes_channels = False
    width_key = "output_dim"

    def trace(self, layer, inputs, call, graph):
        return [graph.fresh(layer, layer.output_dim)]

    def param_axes(self, layer, in_ids, out_ids):
        return {"embeddings": {1: out_ids[0]}}


# ---------------------------------------------------------------- registration

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
register_layer(L.BatchNormalization, BatchNormalizationHandler())
register_layer(L.LayerNormalization, LayerNormalizationHandler())
for _cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
    register_layer(_cls, ElementwiseMergeHandler())
register_layer(L.Concatenate, ConcatenateHandler())
register_layer(L.Flatten, FlattenHandler())
register_layer(L.Dense, DenseHandler())
for _cls in (L.Conv1D, L.Conv2D, L.Conv3D):
    register_layer(_cls, ConvHandler())
for _cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
    register_layer(_cls, ConvTransposeHandler())
for _cls in (L.DepthwiseConv1D, L.DepthwiseConv2D):
    register_layer(_cls, DepthwiseConvHandler())
for _cls in (L.SeparableConv1D, L.SeparableConv2D):
    register_layer(_cls, SeparableConvHandler())
register_layer(L.Embedding, EmbeddingHandler())
register_layer(L.Reshape, ReshapeHandler())
register_layer(L.Normalization, NormalizationHandler())
try:  # keras.applications' own layers: ConvNeXt's per-channel residual scale, and
    # InceptionResNetV2's `shortcut + residual * scale` (a merge of two tensors, like Add)
    from keras.src.applications.convnext import LayerScale as _LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer as _CustomScaleLayer

    register_scale_layer(_LayerScale, size_key="projection_dim")
    register_layer(_CustomScaleLayer, ElementwiseMergeHandler())
except ImportError:  # a Keras without them: nothing to register
    pass
register_layer(L.Permute, PermuteHandler())

# element-wise Keras op nodes (functional models written with operators or keras.ops)
_ELEMENTWISE_OPS = {
    keras.src.ops.numpy: ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum",
                          "Negative", "Absolute", "Abs", "Square", "Sqrt", "Exp", "Log", "Tanh", "Clip"),
    keras.src.ops.nn: ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Gelu", "Elu",
                       "Selu", "LeakyRelu", "Softplus", "Softsign", "HardTanh"),
}  # fmt: skip
for _module, _names in _ELEMENTWISE_OPS.items():
    for _name in _names:
        if isinstance(_op := getattr(_module, _name, None), type):
            register_layer(_op, ElementwiseOpHandler())

"""Every use of Keras internals in the engine, in one place.

Keras 3 has no public way to walk a Functional model's nodes, to find a Sequential's inner
Functional, to reach MultiHeadAttention's gate and output shape, its own applications' layers
(ConvNeXt's `LayerScale`), the classes of its op nodes (`x + 3.0` is a `keras.src.ops.numpy.Add`)
or an optimizer's per-variable slots. The engine needs all of them; keeping them here means a
Keras upgrade is checked against one module.
"""

from __future__ import annotations

from typing import Any

import keras


def functional_of(model: Any) -> Any | None:
    """The Functional graph of a Functional model, or of a Sequential built with an Input; None
    when there is none to walk (an unbuilt Sequential, a subclassed model)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model if hasattr(model, "_nodes_by_depth") else None


def nodes_in_order(functional: Any) -> list[Any]:
    """Every node of a Functional graph, inputs first (deepest first, as Keras runs them)."""
    by_depth = functional._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def input_layer_name(tensor: Any) -> str:
    """The name of the InputLayer a model input tensor comes from."""
    return tensor._keras_history.operation.name


def attention_output_shape(layer: Any) -> tuple[int, ...] | None:
    """MultiHeadAttention's `output_shape` argument (None: the query's channels)."""
    return layer._output_shape or None


def attention_projections(layer: Any) -> list[tuple[Any, str]]:
    """MultiHeadAttention's input projections with the input each reads: query, key, value, and
    the gate (which reads the query) when `use_gate`."""
    projections = [(layer.query_dense, "query"), (layer.key_dense, "key"), (layer.value_dense, "value")]
    if layer._use_gate:
        projections.append((layer._gate_dense, "query"))
    return projections


def attention_uses_gate(layer: Any) -> bool:
    return bool(layer._use_gate)


try:  # absent from other Keras versions: nothing to register then
    from keras.src.applications.convnext import LayerScale as _LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer as _CustomScaleLayer
except ImportError:
    _LayerScale = _CustomScaleLayer = None


def application_layers() -> dict[str, type]:
    """Layer classes of keras.applications that are not exported: ConvNeXt's per-channel residual
    scale (`LayerScale`) and InceptionResNetV2's `shortcut + residual * scale`; empty when this
    Keras has none."""
    found = {"LayerScale": _LayerScale, "CustomScaleLayer": _CustomScaleLayer}
    return {name: cls for name, cls in found.items() if cls is not None}


_ELEMENTWISE_OPS = {
    "numpy": ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum",
              "Negative", "Absolute", "Abs", "Square", "Sqrt", "Exp", "Log", "Tanh", "Clip"),
    "nn": ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Gelu", "Elu",
           "Selu", "LeakyRelu", "Softplus", "Softsign", "HardTanh"),
}  # fmt: skip


def elementwise_op_classes() -> list[type]:
    """The classes of Keras's element-wise op nodes (what `x + 3.0` or `keras.ops.sigmoid(x)`
    adds to a functional model), those this Keras has."""
    modules = {"numpy": keras.src.ops.numpy, "nn": keras.src.ops.nn}
    found = [getattr(modules[m], name, None) for m, names in _ELEMENTWISE_OPS.items() for name in names]
    return [op for op in found if isinstance(op, type)]


def optimizer_variables(optimizer: Any) -> list[Any]:
    """The variables an optimizer's slot lists are aligned with."""
    return list(optimizer._trainable_variables)


# The attributes holding per-variable slot lists, by optimizer class (`Optimizer`: every class's).
OPTIMIZER_SLOTS: dict[type, tuple[str, ...]] = {
    keras.optimizers.Optimizer: ("_accumulated_gradients", "_model_variables_moving_average"),
    keras.optimizers.SGD: ("momentums",),
    keras.optimizers.Adam: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.AdamW: ("_momentums", "_velocities", "_velocity_hats"),
    keras.optimizers.RMSprop: ("_velocities", "_momentums", "_average_gradients"),
    keras.optimizers.Nadam: ("_momentums", "_velocities"),
    keras.optimizers.Lamb: ("_momentums", "_velocities"),
    keras.optimizers.Lion: ("_momentums",),
    keras.optimizers.Adamax: ("_m", "_u"),
    keras.optimizers.Adagrad: ("_accumulators",),
    keras.optimizers.Adadelta: ("_accumulated_grads", "_accumulated_delta_vars"),
    keras.optimizers.Ftrl: ("_accumulators", "_linears"),
}
# Not listed on purpose: Adafactor keeps factored (row/column) slots whose shapes differ from the
# variable's, so slicing them like the weight would be wrong.

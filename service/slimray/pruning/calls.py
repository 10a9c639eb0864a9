"""Reading a Functional model's nodes: the graph to walk, and each call's shapes, constants and
argument roles (a layer call or an op node such as `x + 3.0`)."""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from slimray.pruning import keras_internals
from slimray.pruning.errors import UnsupportedLayerError
from slimray.pruning.handlers import Call


def functional_of(model: Any, path: str) -> Any:
    """The Functional graph to trace for `model`, or a clear refusal."""
    functional = keras_internals.functional_of(model)
    if functional is not None:
        return functional
    cls = type(model)
    if isinstance(model, keras.Sequential):
        raise UnsupportedLayerError(
            path, "is a Sequential model with no Input; build it with keras.Input first"
        )
    raise UnsupportedLayerError(
        path,
        f"is a subclassed model (class {cls.__module__}.{cls.__qualname__}); only Functional and "
        "Sequential models can be traced.",
    )


def traceable(model: Any) -> bool:
    """A nested model the tracer can enter (Functional, or Sequential built with an Input)."""
    return keras_internals.functional_of(model) is not None


def call_of(node: Any, path: str) -> Call:
    """What one node's call saw: shapes in and out, constants and the inputs' roles."""
    return Call(
        in_shapes=tuple(tuple(t.shape) for t in node.input_tensors),
        out_shapes=tuple(tuple(t.shape) for t in node.output_tensors),
        constants=constant_shapes(node),
        roles=input_roles(node),
        path=path,
    )


def input_roles(node: Any) -> tuple[str, ...]:
    """The argument name each of a layer call's input tensors was passed as, in
    `node.input_tensors` order (Keras flattens `(args, kwargs)` the same way)."""
    arguments, call = getattr(node, "arguments", None), getattr(node.operation, "call", None)
    if arguments is None or call is None:
        return ()
    try:
        params = list(inspect.signature(call).parameters)
    except (TypeError, ValueError):
        return ()
    names = [params[i] if i < len(params) else f"arg{i}" for i in range(len(arguments.args))]
    named = tuple(
        keras.tree.map_structure(lambda _, n=n: n, a) for n, a in zip(names, arguments.args, strict=True)
    )
    kw = {k: keras.tree.map_structure(lambda _, n=k: n, v) for k, v in arguments.kwargs.items()}
    flat_values = keras.tree.flatten((arguments.args, arguments.kwargs))
    flat_names = keras.tree.flatten((named, kw))
    roles = tuple(n for n, v in zip(flat_names, flat_values, strict=True) if isinstance(v, keras.KerasTensor))
    return roles if len(roles) == len(node.input_tensors) else ()


def constant_shapes(node: Any) -> tuple[tuple[int, ...], ...]:
    """Shapes of an op node's non-tensor operands (numbers and arrays; `()` for a number)."""
    arguments = getattr(node, "arguments", None)
    if arguments is None:
        return ()
    flat = keras.tree.flatten(list(arguments.args))
    return tuple(
        tuple(np.shape(a))
        for a in flat
        if not isinstance(a, keras.KerasTensor) and (isinstance(a, int | float) or hasattr(a, "shape"))
    )

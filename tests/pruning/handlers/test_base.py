"""Issue 22: one handler contract. `LayerHandler` is an ABC; every registered handler's hooks take
the same arguments (`parts`, `path`); messages name the layer's path; Keras internals are used
in one module only."""

from __future__ import annotations

import ast
import inspect
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import LayerHandler, UnsupportedLayerError, build_graph
from slimray.pruning.handlers.base import _HANDLERS, Call

PRUNING = Path(__file__).resolve().parents[3] / "service" / "slimray" / "pruning"


class _TraceOnly(LayerHandler):
    def trace(self, layer, inputs, call, graph):
        return [inputs[0]]


def test_the_handler_base_is_abstract_in_trace_only():
    with pytest.raises(TypeError, match="abstract"):
        LayerHandler()

    class NoTrace(LayerHandler):
        pass

    with pytest.raises(TypeError, match="trace"):
        NoTrace()
    handler, ids = _TraceOnly(), np.arange(3)
    assert handler.param_axes(None, [ids], [ids], parts={}, path="p") == {}
    assert handler.resize({"units": 3}, [ids > 0], [ids > 0], parts={}, path="p") == {"units": 3}
    assert handler.is_exact(None, [ids > 0], [ids > 0], parts={}, path="p") is True
    assert handler.flops(None, Call(((None, 3),), ((None, 3),), path="p")) == 0


@pytest.mark.parametrize("hook", ["param_axes", "resize", "is_exact"])
def test_every_registered_handler_takes_parts_and_path(hook):
    for cls, handler in _HANDLERS.items():
        params = inspect.signature(getattr(handler, hook)).parameters
        kinds = {name: params[name].kind for name in ("parts", "path") if name in params}
        assert kinds == {"parts": inspect.Parameter.KEYWORD_ONLY, "path": inspect.Parameter.KEYWORD_ONLY}, (
            cls,
            hook,
        )


def test_messages_name_the_path_and_echo_the_value():
    inner_in = keras.Input((8, 8, 3))
    block = keras.Model(
        inner_in, L.Conv2D(4, 3, data_format="channels_first", name="cf")(inner_in), name="block"
    )
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(block(inputs))))
    [kept] = build_graph(model).kept_whole
    assert kept.path == "block/cf" and kept.operation == "keras.layers.Conv2D"
    assert "data_format='channels_first'" in kept.reason
    err = UnsupportedLayerError(kept.path, kept.reason, kept.operation)
    assert str(err).startswith("Layer 'block/cf' (keras.layers.Conv2D) uses data_format='channels_first'")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def _private_uses(tree: ast.AST) -> list[int]:
    """Lines reading `x._name` (not self/cls) or naming `keras.src`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if (private and not own) or (node.attr == "src" and ast.unparse(node.value) == "keras"):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            lines.append(node.lineno)
    return lines


def test_keras_internals_are_used_in_one_module_only():
    found = []
    for path in sorted(PRUNING.rglob("*.py")):
        if path.name == "keras_internals.py":
            continue
        found += [f"{path.relative_to(PRUNING)}:{n}" for n in _private_uses(ast.parse(path.read_text()))]
    assert found == []

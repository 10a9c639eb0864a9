"""Surgery: a new, physically smaller `keras.Model` with the surviving weights copied.

The original model is left untouched; the new one is built from an edited config, so it saves
and loads with plain Keras.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from slimray.pruning import keras_internals
from slimray.pruning.graph import DependencyGraph, LayerRecord
from slimray.pruning.handlers import registered_classes, weight_key
from slimray.pruning.planner import PrunePlan


@dataclass
class VariableMove:
    """Where an old variable's surviving values go: `new[...] = old[np.ix_(*index)]`."""

    old: Any
    new: Any
    index: tuple[np.ndarray | slice, ...]

    def take(self, value: np.ndarray) -> np.ndarray:
        out = value
        for axis, idx in enumerate(self.index):
            if not isinstance(idx, slice):
                out = np.take(out, idx, axis=axis)
        return out


@dataclass
class ShrinkResult:
    """The pruned model, where each surviving variable went, and the paths (in model order) of
    the layers whose function the pruning changed (`LayerHandler.is_exact`)."""

    model: Any
    moves: list[VariableMove]
    approximate: list[str] = field(default_factory=list)


def _layer_index(record: LayerRecord, graph: DependencyGraph, masks) -> dict[str, tuple]:
    """Per variable name, the kept positions along each channel axis."""
    index: dict[str, tuple] = {}
    weights = record.weights_by_key()
    for name, axes in record.param_axes().items():
        shape = weights[name].shape
        idx: list[np.ndarray | slice] = [slice(None)] * len(shape)
        for axis, ids in axes.items():
            if len(ids) != shape[axis]:
                raise ValueError(
                    f"Layer '{record.path}': variable '{name}' axis {axis} has {shape[axis]} "
                    f"positions, the handler mapped {len(ids)}"
                )
            idx[axis] = np.nonzero(graph.keep_positions(ids, masks))[0]
        index[name] = tuple(idx)
    return index


class _Editor:
    """Rewrites a (possibly nested) model config for the kept channels."""

    def __init__(self, graph: DependencyGraph, masks: list[np.ndarray]):
        self.graph = graph
        self.masks = masks
        self.by_layer = {id(r.layer): r for r in graph.layer_records()}

    def keep(self, ids) -> np.ndarray:
        return self.graph.keep_positions(ids, self.masks)

    def keep_masks(self, record: LayerRecord) -> dict[str, Any]:
        """The record's keep masks as its handler's hooks take them."""
        return {
            "in_keep": [self.keep(ids) for ids in record.in_ids],
            "out_keep": [self.keep(ids) for ids in record.out_ids],
            "parts": {k: self.keep(ids) for k, ids in record.parts.items()},
            "path": record.path,
        }

    def approximate(self) -> list[str]:
        """Paths, in model order, of the layers this pruning does not keep exact."""
        return [r.path for r in self.graph.layer_records()
                if not r.handler.is_exact(r.layer, **self.keep_masks(r))]  # fmt: skip

    def edit_model(self, model: Any, config: dict) -> dict:
        config = copy.deepcopy(config)
        inner = getattr(model, "_functional", None) or model
        input_names = [keras_internals.input_layer_name(t) for t in inner.inputs]
        nested_in = self.graph.nested_inputs.get(id(model))
        operations = {op.name: op for op in getattr(inner, "operations", model.layers)}
        for entry in config["layers"]:
            entry.pop("build_config", None)
            layer_cfg = entry["config"]
            name = layer_cfg.get("name", entry.get("name"))
            if entry["class_name"] == "InputLayer":
                if nested_in is not None and name in input_names:
                    pos = input_names.index(name)
                    shape = list(layer_cfg["batch_shape"])
                    shape[-1] = int(np.count_nonzero(self.keep(nested_in[pos])))
                    layer_cfg["batch_shape"] = shape
                continue
            layer = operations.get(name)  # a layer, or an op node (not found by get_layer)
            if isinstance(layer, keras.Model) and id(layer) in self.graph.nested_inputs:
                entry["config"] = self.edit_model(layer, layer_cfg)  # traced: frozen ones stay
                continue
            record = self.by_layer.get(id(layer))
            if record is None:
                continue
            entry["config"] = record.handler.resize(layer_cfg, **self.keep_masks(record))
        if isinstance(model, keras.Sequential) and nested_in is not None:
            config.pop("build_input_shape", None)
        return config


def _find_new_layer(new_model: Any, path: str) -> Any:
    layer = new_model
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _user_classes(graph: DependencyGraph) -> dict[str, type]:
    """Classes from_config must be told about: registered and traced ones (a frozen user layer
    is rebuilt as it was) that are not Keras's own; Keras resolves its own by module, and their
    bare names clash (the `Multiply` layer and the `multiply` op node's class)."""
    classes = set(registered_classes()) | {type(r.layer) for r in graph.layer_records()}
    return {c.__name__: c for c in classes if not c.__module__.startswith("keras.")}


def shrink(model: Any, graph: DependencyGraph, plan: PrunePlan) -> ShrinkResult:
    """Build the pruned model described by `plan` and copy the surviving weights into it."""
    masks = plan.masks(graph)
    editor = _Editor(graph, masks)
    config = editor.edit_model(model, model.get_config())
    with keras.saving.custom_object_scope(_user_classes(graph)):
        new_model = type(model).from_config(config)
    moves: list[VariableMove] = []
    for record in graph.layer_records():
        if not record.weights:  # nothing to copy (op nodes are not even layers)
            continue
        new_layer = _find_new_layer(new_model, record.path)
        index = _layer_index(record, graph, masks)
        if len(record.weights) != len(new_layer.weights):
            raise ValueError(
                f"Layer '{record.path}': rebuilt layer has {len(new_layer.weights)} variables, "
                f"the original {len(record.weights)}"
            )
        for old, new in zip(record.weights, new_layer.weights, strict=True):
            move = VariableMove(old, new, index.get(weight_key(record.layer, old), ()))
            value = move.take(keras.ops.convert_to_numpy(old))
            if tuple(value.shape) != tuple(new.shape):
                raise ValueError(
                    f"Layer '{record.path}': variable '{old.name}' sliced to {value.shape} but "
                    f"the rebuilt layer expects {tuple(new.shape)}"
                )
            new.assign(value)
            moves.append(move)
        if callable(finalize := getattr(new_layer, "finalize_state", None)):
            finalize()  # state derived from the variables (Normalization's mean and variance)
    return ShrinkResult(new_model, moves, editor.approximate())


def zero_pruned_channels(model: Any, graph: DependencyGraph, plan: PrunePlan) -> None:
    """Set, in place, every weight position of the channels `plan` removes to zero.

    The mask-only equivalent of `shrink`: used to prove surgery is exact.
    """
    masks = plan.masks(graph)
    for record in graph.layer_records():
        weights = record.weights_by_key()
        for name, axes in record.param_axes().items():
            value = keras.ops.convert_to_numpy(weights[name]).copy()
            for axis, ids in axes.items():
                drop = ~graph.keep_positions(ids, masks)
                index = [slice(None)] * value.ndim
                index[axis] = drop
                value[tuple(index)] = 0.0
            weights[name].assign(value)

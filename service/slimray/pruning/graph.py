"""Channel dependency graph of a Keras 3 Functional/Sequential model: the groups of channels
that must be removed together, and which weight slices each channel owns.

The pieces: `atoms` (union-find over channel positions), `calls` (what each node's call saw),
the handlers (what each layer does to channels), `groups` (numbering what can go) and
`kept_whole` (what cannot, and what that costs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from slimray.pruning import keras_internals
from slimray.pruning.atoms import ChannelAtoms
from slimray.pruning.calls import call_of, functional_of, traceable
from slimray.pruning.errors import BlockedModelError, UnsupportedLayerError
from slimray.pruning.groups import Group, number_groups
from slimray.pruning.handlers import (
    Call,
    Ids,
    KeepWholeHandler,
    LayerHandler,
    describe_operation,
    handler_for,
    weight_key,
)
from slimray.pruning.kept_whole import KeptWhole, with_flops_shares

__all__ = ["Anchor", "DependencyGraph", "Group", "KeptWhole", "LayerRecord", "build_graph"]


@dataclass
class LayerRecord:
    """One layer as traced: channel atoms of its inputs/outputs and the shapes of each call."""

    layer: Any
    path: str
    handler: LayerHandler
    in_ids: list[Ids]
    out_ids: list[Ids]
    calls: list[Call] = field(default_factory=list)
    # ids a handler named while tracing: a layer's inner channels (attention heads, one direction
    # of a Bidirectional) and its inputs by role ("query", "value")
    parts: dict[str, Ids] = field(default_factory=dict)

    def param_axes(self) -> dict[str, dict[int, Ids]]:
        layer, parts, path = self.layer, self.parts, self.path
        return self.handler.param_axes(layer, self.in_ids, self.out_ids, parts=parts, path=path)

    @property
    def kept_whole(self) -> bool:
        return isinstance(self.handler, KeepWholeHandler)

    @property
    def weights(self) -> list[Any]:
        """The layer's variables; none for an op node (an operation, not a layer)."""
        return list(getattr(self.layer, "weights", []))

    def weights_by_key(self) -> dict[str, Any]:
        """The variables by their key in `param_axes` (see `handlers.weight_key`)."""
        return {weight_key(self.layer, w): w for w in self.weights}


@dataclass
class Anchor:
    """A top-level tensor that feeds a channel-mixing layer; activation criteria read it."""

    tensor: Any
    ids: Ids


class DependencyGraph:
    """Traces a model once; answers which group/channel every weight position belongs to.

    A layer no handler can trace is kept whole (its channels fixed) and listed in `kept_whole`;
    `strict=True` refuses such a model instead, naming every one at once."""

    def __init__(self, model: Any, strict: bool = False):
        if not isinstance(model, keras.Model):
            raise TypeError(f"build_graph needs a keras.Model. Received: {type(model).__name__}")
        self.model = model
        self.records: dict[int, LayerRecord] = {}
        self.nested_inputs: dict[int, list[Ids]] = {}  # id(nested model) -> ids of its inputs
        self.anchors: list[Anchor] = []
        self.kept_whole: list[KeptWhole] = []
        self._atoms = ChannelAtoms()
        self._fresh_cache: dict[Any, Ids] = {}
        self._parts: dict[int, dict[str, Ids]] = {}
        self._path_of: dict[int, str] = {}
        functional = functional_of(model, model.name)
        input_ids = [self._atoms.new(t.shape[-1], "input") for t in functional.inputs]
        for ids in input_ids:
            self.fix(ids)
        for ids in self._trace(functional, input_ids, prefix="", top=True):
            self.fix(ids)
        if strict and self.kept_whole:
            raise BlockedModelError(self.kept_whole)
        index = number_groups(self._atoms, self.records.values())
        self.groups: list[Group] = index.groups
        self._atom_group, self._atom_chan = index.atom_group, index.atom_chan
        traced = [r for r in self.records.values() if not r.kept_whole]
        self.kept_whole = with_flops_shares(self.kept_whole, self._atoms, traced)

    # ---------------------------------------------------------- tracer interface (handlers call it)
    def fresh(self, layer: Any, size: int, part: str | None = None) -> Ids:
        """New channels owned by `layer` (by its `part`, e.g. a Bidirectional's "forward", for a
        layer that makes several kinds); the same ones on every call of a shared layer."""
        key = (id(layer), part)
        if key not in self._fresh_cache:
            owner = self._path_of[id(layer)] + (f"/{part}" if part else "")
            self._fresh_cache[key] = self._atoms.new(size, owner)
            if part:
                self.name(layer, part, self._fresh_cache[key])
        return self._fresh_cache[key]

    def name(self, layer: Any, part: str, ids: Ids) -> None:
        """Record `ids` as `layer`'s `part` (kept from its first call), for its handler's
        `param_axes`, `resize` and `is_exact` (`parts=`)."""
        self._parts.setdefault(id(layer), {}).setdefault(part, ids)

    def fresh_output(self, layer: Any, index: int, size: int) -> Ids:
        """New channels for output `index` of a layer kept whole (the same on every call)."""
        key = (id(layer), "output", index)
        if key not in self._fresh_cache:
            self._fresh_cache[key] = self._atoms.new(size, self._path_of[id(layer)])
        return self._fresh_cache[key]

    def union(self, a: Ids, b: Ids, where: str) -> None:
        """Tie `a` and `b` channel by channel; `where` is the tying layer's path."""
        self._atoms.union(a, b, where)

    def fix(self, ids: Ids) -> None:
        """Keep these channels whole."""
        self._atoms.fix(ids)

    # ---------------------------------------------------------- tracing
    def _trace(self, functional: Any, input_ids: list[Ids], prefix: str, top: bool) -> list[Ids]:
        env: dict[int, Ids] = {id(t): ids for t, ids in zip(functional.inputs, input_ids, strict=True)}
        for node in keras_internals.nodes_in_order(functional):
            if node.is_input:
                continue
            op = node.operation
            path = prefix + op.name
            self._path_of[id(op)] = path
            ins = [env[id(t)] for t in node.input_tensors]
            if isinstance(op, keras.Model) and traceable(op):
                outs = self._trace_nested(op, ins, path)
            else:
                outs = self._trace_layer(op, node, ins, path, top)
            for tensor, ids in zip(node.output_tensors, outs, strict=True):
                if len(ids) != tensor.shape[-1]:
                    raise UnsupportedLayerError(
                        path, f"traced {len(ids)} channels but its output has {tensor.shape[-1]}",
                        describe_operation(op),
                    )  # fmt: skip
                env[id(tensor)] = ids
        return [env[id(t)] for t in functional.outputs]

    def _trace_nested(self, model: Any, ins: list[Ids], path: str) -> list[Ids]:
        inner = functional_of(model, path)
        previous = self.nested_inputs.get(id(model))
        if previous is None:
            self.nested_inputs[id(model)] = ins
        else:
            for a, b in zip(previous, ins, strict=True):
                self.union(a, b, where=path)
        return self._trace(inner, ins, prefix=path + "/", top=False)

    def _trace_layer(self, op: Any, node: Any, ins: list[Ids], path: str, top: bool) -> list[Ids]:
        call = call_of(node, path)
        handler, outs = self._trace_call(op, ins, call)
        record = self.records.get(id(op))
        if record is None:
            parts = {} if isinstance(handler, KeepWholeHandler) else self._parts.get(id(op), {})
            record = LayerRecord(op, path, handler, list(ins), list(outs), parts=parts)
            self.records[id(op)] = record
        else:  # shared layer: every call shares the same weights, so channels are tied
            for a, b in zip(record.in_ids, ins, strict=True):
                self.union(a, b, where=path)
            for a, b in zip(record.out_ids, outs, strict=True):
                self.union(a, b, where=path)
        record.calls.append(call)
        if top and handler.mixes_channels:
            for tensor, ids in zip(node.input_tensors, ins, strict=True):
                if all(a.tensor is not tensor for a in self.anchors):
                    self.anchors.append(Anchor(tensor, ids))
        return outs

    def _trace_call(self, op: Any, ins: list[Ids], call: Call) -> tuple[LayerHandler, list[Ids]]:
        """The handler that traced this call and its outputs' ids; a layer its handler refuses
        (or that has none) is kept whole and listed, once however often it is called."""
        known = self.records.get(id(op))
        if known is not None and known.kept_whole:  # a shared layer: kept whole once
            return self._keep_whole(op, ins, call, known.handler.reason, known.path)
        try:
            handler = handler_for(op, call.path)
            return handler, handler.trace(op, ins, call, self)
        except UnsupportedLayerError as err:
            if known is None:
                self.kept_whole.append(KeptWhole(call.path, describe_operation(op), err.problem))
            return self._keep_whole(op, ins, call, err.problem, known.path if known else call.path)

    def _keep_whole(self, op: Any, ins: list[Ids], call: Call, reason: str, owner: str):
        handler = KeepWholeHandler(reason)
        since = len(self._atoms.fixed)
        outs = handler.trace(op, ins, call, self)
        self._atoms.attribute_fixed(since, owner)
        return handler, outs

    # ---------------------------------------------------------- queries
    def locate(self, ids: Ids) -> tuple[np.ndarray, np.ndarray]:
        """(group index, channel index) of each position; -1 for channels never pruned."""
        return self._atom_group[ids], self._atom_chan[ids]

    def keep_positions(self, ids: Ids, keep: list[np.ndarray]) -> np.ndarray:
        """Boolean mask over positions given per-group boolean keep masks."""
        g, c = self.locate(ids)
        out = np.ones(len(ids), dtype=bool)
        prunable = g >= 0
        if prunable.any():
            offsets = np.concatenate([[0], np.cumsum([len(k) for k in keep])])
            flat = np.concatenate([np.asarray(k, dtype=bool) for k in keep])
            out[prunable] = flat[offsets[g[prunable]] + c[prunable]]
        return out

    def layer_records(self) -> list[LayerRecord]:
        """Every traced layer, in model order."""
        return list(self.records.values())

    def record_by_path(self, path: str) -> LayerRecord:
        for record in self.records.values():
            if record.path == path:
                return record
        raise KeyError(f"No traced layer at path {path!r}")

    def group_by_id(self, group_id: str) -> Group:
        for group in self.groups:
            if group.id == group_id:
                return group
        raise KeyError(f"No channel group {group_id!r}; groups: {[g.id for g in self.groups]}")


def build_graph(model: Any, strict: bool = False) -> DependencyGraph:
    """Trace `model` (Functional or Sequential, nesting allowed) into channel groups; layers it
    cannot see through are kept whole (`graph.kept_whole`), or with `strict` refused all at once."""
    return DependencyGraph(model, strict=strict)

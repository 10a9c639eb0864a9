"""Channel dependency graph of a Keras 3 Functional/Sequential model: the groups of channels
that must be removed together, and which weight slices each channel owns."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import keras
import numpy as np

from slimray.pruning.handlers import (
    Call,
    FrozenHandler,
    Ids,
    LayerHandler,
    UnsupportedLayerError,
    describe_operation,
    handler_for,
    weight_key,
)


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
        extra = {"parts": self.parts} if self.parts else {}
        return self.handler.param_axes(self.layer, self.in_ids, self.out_ids, **extra)

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


@dataclass(frozen=True)
class Blocker:
    """A layer or op node the pruner cannot see through: its channels are kept whole."""

    path: str  # nested models joined by '/', e.g. "block/inner_conv"
    operation: str  # as the user wrote it, e.g. "keras.layers.LSTM" or "keras.ops.add"
    reason: str
    # share of the model's FLOPs in channels only frozen layers keep whole, this one among them:
    # what supporting it could let pruning reach
    flops_share: float = 0.0

    def describe(self) -> str:
        return f"'{self.path}' ({self.operation}): {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BlockedModelError(UnsupportedLayerError):
    """strict pruning refused a model; `blockers` lists every layer that blocks it."""

    def __init__(self, blockers: list[Blocker]):
        self.blockers = blockers
        listed = "; ".join(b.describe() for b in blockers)
        super().__init__(
            f"{len(blockers)} layer(s) cannot be pruned through, and strict pruning refuses the "
            f"model: {listed}. Without strict, their channels are kept whole and the rest is "
            "pruned; or teach slimray each class with slimray.pruning.register_layer."
        )

    def __reduce__(self):  # rebuilt from its blockers, not its message (Ray pickles errors)
        return (type(self), (self.blockers,))


@dataclass(frozen=True)
class Group:
    """Channels that are removed together; `size` counts the prunable channels. `segments`: the
    channels each producer contributes (several when a Concatenate is tied to another tensor);
    a plan keeps at least one of each, or a layer would be left with no channels."""

    index: int
    id: str
    size: int
    layers: tuple[str, ...]
    segments: tuple[tuple[int, ...], ...] = ()


def _functional_of(model: Any, path: str) -> Any:
    if isinstance(model, keras.Sequential):
        fn = getattr(model, "_functional", None)
        if fn is None:
            raise UnsupportedLayerError(
                f"Sequential model '{path}' has no Input; build it with keras.Input first."
            )
        return fn
    if not hasattr(model, "_nodes_by_depth"):
        raise UnsupportedLayerError(
            f"Model '{path}' of class {type(model).__name__} is a subclassed model; only "
            "Functional and Sequential models can be traced."
        )
    return model


def _traceable(model: Any) -> bool:
    """A nested model the tracer can enter (Functional, or Sequential built with an Input)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None) is not None
    return hasattr(model, "_nodes_by_depth")


def _find_root(parent: list[int], x: int) -> int:
    """Union-find root with path halving."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _shape(t: Any) -> tuple[int | None, ...]:
    return tuple(t.shape)


def _input_roles(node: Any) -> tuple[str, ...]:
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


def _constant_shapes(node: Any) -> tuple[tuple[int, ...], ...]:
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


class DependencyGraph:
    """Traces a model once; answers which group/channel every weight position belongs to.

    A layer no handler can trace is frozen (its channels kept whole) and listed in `blockers`;
    `strict=True` refuses such a model instead, naming every blocker at once."""

    def __init__(self, model: Any, strict: bool = False):
        if not isinstance(model, keras.Model):
            raise TypeError(f"build_graph needs a keras.Model. Received: {type(model).__name__}")
        self.model = model
        self.records: dict[int, LayerRecord] = {}
        self.nested_inputs: dict[int, list[Ids]] = {}  # id(nested model) -> ids of its inputs
        self.anchors: list[Anchor] = []
        self._parent: list[int] = []
        self._space: list[int] = []  # atom -> space
        self._space_parent: list[int] = []
        self._space_owner: list[str] = []
        self._fresh_cache: dict[Any, Ids] = {}
        self._parts: dict[int, dict[str, Ids]] = {}
        self._fixed: list[Ids] = []
        self._fixed_by: dict[int, str | None] = {}  # index in _fixed -> the blocker that fixed it
        self._path_of: dict[int, str] = {}
        self.blockers: list[Blocker] = []
        functional = _functional_of(model, model.name)
        input_ids = [self._new_atoms(t.shape[-1], "input") for t in functional.inputs]
        for ids in input_ids:
            self.fix(ids)
        for ids in self._trace(functional, input_ids, prefix="", top=True):
            self.fix(ids)
        if strict and self.blockers:
            raise BlockedModelError(self.blockers)
        self._build_groups()
        self._measure_blockers()

    # ---------------------------------------------------------- tracer interface
    def _new_atoms(self, size: int | None, owner: str) -> Ids:
        if size is None:
            raise UnsupportedLayerError(f"'{owner}' has an unknown channel count")
        start = len(self._parent)
        space = len(self._space_parent)
        self._space_parent.append(space)
        self._space_owner.append(owner)
        self._parent.extend(range(start, start + size))
        self._space.extend([space] * size)
        return np.arange(start, start + size, dtype=np.int64)

    def fresh(self, layer: Any, size: int, part: str | None = None) -> Ids:
        """New channels owned by `layer` (by its `part`, e.g. a Bidirectional's "forward", for a
        layer that makes several kinds); the same ones on every call of a shared layer."""
        key = (id(layer), part)
        if key not in self._fresh_cache:
            owner = self._path_of[id(layer)] + (f"/{part}" if part else "")
            self._fresh_cache[key] = self._new_atoms(size, owner)
            if part:
                self.name(layer, part, self._fresh_cache[key])
        return self._fresh_cache[key]

    def name(self, layer: Any, part: str, ids: Ids) -> None:
        """Record `ids` as `layer`'s `part` (kept from its first call), for its handler's
        `param_axes(..., parts=)` and `resize(..., parts=)`."""
        self._parts.setdefault(id(layer), {}).setdefault(part, ids)

    def union(self, a: Ids, b: Ids, where: str) -> None:
        if len(a) != len(b):
            raise UnsupportedLayerError(f"Layer '{where}' joins tensors with {len(a)} and {len(b)} channels")
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = self._find(x), self._find(y)
            if rx != ry:
                self._parent[ry] = rx
                sx, sy = self._space_find(self._space[x]), self._space_find(self._space[y])
                if sx != sy:
                    self._space_parent[sy] = sx

    def fresh_output(self, layer: Any, index: int, size: int) -> Ids:
        """New channels for output `index` of a frozen layer (the same on every call)."""
        key = (id(layer), "output", index)
        if key not in self._fresh_cache:
            self._fresh_cache[key] = self._new_atoms(size, self._path_of[id(layer)])
        return self._fresh_cache[key]

    def fix(self, ids: Ids) -> None:
        self._fixed.append(np.asarray(ids))

    def _find(self, x: int) -> int:
        return _find_root(self._parent, x)

    def _space_find(self, x: int) -> int:
        return _find_root(self._space_parent, x)

    # ---------------------------------------------------------- tracing
    def _trace(self, functional: Any, input_ids: list[Ids], prefix: str, top: bool) -> list[Ids]:
        env: dict[int, Ids] = {}
        for tensor, ids in zip(functional.inputs, input_ids, strict=True):
            env[id(tensor)] = ids
        for depth in sorted(functional._nodes_by_depth, reverse=True):
            for node in functional._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                op = node.operation
                path = prefix + op.name
                self._path_of[id(op)] = path
                ins = [env[id(t)] for t in node.input_tensors]
                if isinstance(op, keras.Model) and _traceable(op):
                    outs = self._trace_nested(op, ins, path)
                else:
                    outs = self._trace_layer(op, node, ins, path, top)
                for tensor, ids in zip(node.output_tensors, outs, strict=True):
                    if len(ids) != tensor.shape[-1]:
                        raise UnsupportedLayerError(
                            f"Layer '{path}' ({type(op).__name__}): traced {len(ids)} channels "
                            f"but the output has {tensor.shape[-1]}"
                        )
                    env[id(tensor)] = ids
        return [env[id(t)] for t in functional.outputs]

    def _trace_nested(self, model: Any, ins: list[Ids], path: str) -> list[Ids]:
        inner = _functional_of(model, path)
        previous = self.nested_inputs.get(id(model))
        if previous is None:
            self.nested_inputs[id(model)] = ins
        else:
            for a, b in zip(previous, ins, strict=True):
                self.union(a, b, where=path)
        return self._trace(inner, ins, prefix=path + "/", top=False)

    def _trace_layer(self, op: Any, node: Any, ins: list[Ids], path: str, top: bool) -> list[Ids]:
        call = Call(
            in_shapes=tuple(_shape(t) for t in node.input_tensors),
            out_shapes=tuple(_shape(t) for t in node.output_tensors),
            constants=_constant_shapes(node),
            roles=_input_roles(node),
        )
        known = self.records.get(id(op))
        try:
            if known is not None and isinstance(known.handler, FrozenHandler):
                raise UnsupportedLayerError(known.handler.reason)  # a shared layer: frozen once
            handler = handler_for(op, path)
            outs = handler.trace(op, ins, call, self)
        except UnsupportedLayerError as err:
            handler = FrozenHandler(str(err))
            if known is None:
                self.blockers.append(Blocker(path, describe_operation(op), str(err)))
            first_fix = len(self._fixed)
            outs = handler.trace(op, ins, call, self)
            for i in range(first_fix, len(self._fixed)):
                self._fixed_by[i] = known.path if known is not None else path
        record = self.records.get(id(op))
        if record is None:
            parts = {} if isinstance(handler, FrozenHandler) else self._parts.get(id(op), {})
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

    # ---------------------------------------------------------- groups
    def _build_groups(self) -> None:
        """Number the prunable channels: each unfixed root of tied atoms is one channel of the
        group its channel space belongs to; every atom learns its (group, channel)."""
        n = len(self._parent)
        roots = np.fromiter((self._find(a) for a in range(n)), dtype=np.int64, count=n)
        group_of_space, group_roots, chan_of_root = self._number_channels(roots)
        self._atom_group = np.full(n, -1, dtype=np.int64)
        self._atom_chan = np.full(n, -1, dtype=np.int64)
        for atom in range(n):
            gc = chan_of_root.get(int(roots[atom]))
            if gc is not None:
                self._atom_group[atom], self._atom_chan[atom] = gc
        count = len(group_roots)
        owners, members, segments = (
            self._group_owners(group_of_space, count), self._group_members(count), self._group_segments(count)
        )  # fmt: skip
        self.groups = [
            Group(
                index=g,
                id="+".join(sorted(owners[g])) or f"group{g}",
                size=len(group_roots[g]),
                layers=tuple(members[g]),
                segments=tuple(tuple(sorted(c)) for c in segments[g].values()),
            )
            for g in range(count)
        ]

    def _number_channels(
        self, roots: np.ndarray
    ) -> tuple[dict[int, int], list[list[int]], dict[int, tuple[int, int]]]:
        """Group index of each channel space, each group's roots, and each root's (group,
        channel). Atoms go in creation order, so channel order follows the first producer."""
        fixed_roots = set()
        for ids in self._fixed:
            fixed_roots.update(roots[ids].tolist())
        n = len(roots)
        spaces = np.fromiter((self._space_find(self._space[a]) for a in range(n)), dtype=np.int64, count=n)
        group_of_space: dict[int, int] = {}
        group_roots: list[list[int]] = []
        chan_of_root: dict[int, tuple[int, int]] = {}
        for atom in range(n):
            root = int(roots[atom])
            if root in fixed_roots or root in chan_of_root:
                continue
            space = int(spaces[atom])
            if space not in group_of_space:
                group_of_space[space] = len(group_roots)
                group_roots.append([])
            g = group_of_space[space]
            chan_of_root[root] = (g, len(group_roots[g]))
            group_roots[g].append(root)
        return group_of_space, group_roots, chan_of_root

    def _group_owners(self, group_of_space: dict[int, int], count: int) -> dict[int, list[str]]:
        """The layers whose output spaces make each group (its id); model inputs are not owners."""
        owners: dict[int, list[str]] = {g: [] for g in range(count)}
        for s in range(len(self._space_parent)):
            g = group_of_space.get(self._space_find(s))
            if g is not None and self._space_owner[s] != "input":
                owners[g].append(self._space_owner[s])
        return owners

    def _group_members(self, count: int) -> dict[int, list[str]]:
        """Every layer with a weight axis on each group's channels."""
        members: dict[int, list[str]] = {g: [] for g in range(count)}
        for record in self.records.values():
            touched = set()
            for axes in record.param_axes().values():
                for ids in axes.values():
                    touched.update(self._atom_group[ids].tolist())
            for g in touched - {-1}:
                members[g].append(record.path)
        return members

    def _group_segments(self, count: int) -> dict[int, dict[int, set[int]]]:
        """Each group's channels by the space each atom was created in: one producer's outputs."""
        segments: dict[int, dict[int, set[int]]] = {g: {} for g in range(count)}
        for atom in range(len(self._parent)):
            g = int(self._atom_group[atom])
            if g >= 0:
                segments[g].setdefault(self._space[atom], set()).add(int(self._atom_chan[atom]))
        return segments

    def _held_roots(self, roots: np.ndarray) -> dict[str, set[int]]:
        """Per blocker, the channel roots it fixes that nothing but frozen layers fixes (model
        inputs and outputs, a softmax, stay fixed whatever is supported)."""
        by_blocker: dict[str, set[int]] = {}
        elsewhere: set[int] = set()
        for i, ids in enumerate(self._fixed):
            owner = self._fixed_by.get(i)
            target = by_blocker.setdefault(owner, set()) if owner else elsewhere
            target.update(roots[ids].tolist())
        return {path: held - elsewhere for path, held in by_blocker.items()}

    def _measure_blockers(self) -> None:
        """Each blocker's `flops_share`: FLOPs of the traced layers, weighted by the fraction of
        their work that touches a channel it holds (1 - (1 - a)(1 - b) for input and output
        fractions a and b), over the model's total."""
        if not self.blockers:
            return
        roots = np.fromiter((self._find(a) for a in range(len(self._parent))), dtype=np.int64)
        records = [r for r in self.records.values() if not isinstance(r.handler, FrozenHandler)]
        costs = [sum(r.handler.flops(r.layer, call) for call in r.calls) for r in records]
        total = max(sum(costs), 1)

        def held_fraction(ids_list: list[Ids], held: set[int]) -> float:
            return (
                float(np.isin(roots[ids_list[0]], list(held)).mean())
                if ids_list and len(ids_list[0])
                else 0.0
            )

        shares = {}
        for path, held in self._held_roots(roots).items():
            locked = 0.0
            for record, cost in zip(records, costs, strict=True):
                if cost and held:
                    a, b = held_fraction(record.in_ids, held), held_fraction(record.out_ids, held)
                    locked += cost * (1.0 - (1.0 - a) * (1.0 - b))
            shares[path] = locked / total
        self.blockers = [replace(b, flops_share=round(shares.get(b.path, 0.0), 6)) for b in self.blockers]

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
    cannot see through are frozen (`graph.blockers`), or with `strict` refused all at once."""
    return DependencyGraph(model, strict=strict)

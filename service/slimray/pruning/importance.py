"""Channel importance criteria, one registry: a name, a config dict or an instance.

Scores are per group (higher = keep); workers sum local scores with a `Reducer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from slimray.core.registry import Configurable, Registry
from slimray.pruning.graph import DependencyGraph
from slimray.pruning.handlers import weight_key
from slimray.pruning.reducer import IdentityReducer, Reducer


@dataclass
class ScoringBatch:
    """Inputs (and targets, for gradient criteria) of the local shard used to score channels."""

    x: Any
    y: Any = None
    loss: Any = "sparse_categorical_crossentropy"


class Importance(Configurable):
    """Base criterion: `__call__(graph, batch)` gives one 1-D score array per group."""

    needs_data = False

    def __call__(self, graph: DependencyGraph, batch: ScoringBatch | None = None) -> list[np.ndarray]:
        raise NotImplementedError


criteria: Registry[Importance] = Registry("importance criterion", Importance)


def get_criterion(identifier: Any) -> Importance:
    """A criterion from `"l1"`, `{"class_name": "taylor", "config": {...}}` or an instance."""
    return criteria.get(identifier)


def score_groups(
    graph: DependencyGraph,
    criterion: Importance,
    batch: ScoringBatch | None = None,
    reducer: Reducer | None = None,
) -> list[np.ndarray]:
    """Local scores of every group, averaged over workers in one allreduce of one vector."""
    return reduce_scores(graph, criterion(graph, batch), reducer)


def reduce_scores(
    graph: DependencyGraph, local: list[np.ndarray], reducer: Reducer | None = None
) -> list[np.ndarray]:
    """Average per-group scores over workers: one allreduce of the concatenated vector."""
    reducer = reducer or IdentityReducer()
    sizes = [g.size for g in graph.groups]
    if len(local) != len(sizes):
        raise ValueError(f"Got scores for {len(local)} groups; the graph has {len(sizes)}")
    for group, scores in zip(graph.groups, local, strict=True):
        if np.shape(scores) != (group.size,):
            raise ValueError(f"Got {np.shape(scores)} scores for group '{group.id}' of size {group.size}")
    flat = np.concatenate(local).astype(np.float64) if local else np.zeros(0)
    total = np.asarray(reducer.allreduce(flat), dtype=np.float64) / reducer.world_size
    return np.split(total, np.cumsum(sizes)[:-1]) if sizes else []


# ------------------------------------------------------------------ weight criteria


def _weights_by_name(layer: Any, trainable_only: bool) -> dict[str, np.ndarray]:
    source = getattr(layer, "trainable_weights" if trainable_only else "weights", [])  # none: op nodes
    return {weight_key(layer, w): keras.ops.convert_to_numpy(w) for w in source}


def _accumulate_weights(
    graph: DependencyGraph,
    per_position: Callable[[np.ndarray], np.ndarray],
    include: Callable[[Any, str], bool] = lambda layer, name: True,
    values: Callable[[Any], dict[str, np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """Sum `per_position(rows)` over every weight slice that belongs to each group channel; the
    slices of the trainable weights, or of `values(record)` (by weight key) when given."""
    scores = [np.zeros(g.size) for g in graph.groups]
    for record in graph.layer_records():
        weights = values(record) if values else _weights_by_name(record.layer, trainable_only=True)
        for name, axes in record.param_axes().items():
            if name not in weights or not include(record.layer, name):
                continue
            w = weights[name]
            for axis, ids in axes.items():
                rows = np.moveaxis(w, axis, 0).reshape(len(ids), -1)
                _scatter(graph, ids, per_position(rows), scores)
    return scores


def _scatter(graph: DependencyGraph, ids: np.ndarray, values: np.ndarray, scores: list) -> None:
    g, c = graph.locate(ids)
    for gi in np.unique(g[g >= 0]):
        sel = g == gi
        np.add.at(scores[gi], c[sel], values[sel])


@criteria.register("l1")
class L1Importance(Importance):
    """Sum of |w| over every weight slice of the channel, across the whole group."""

    def __call__(self, graph, batch=None):
        return _accumulate_weights(graph, lambda rows: np.abs(rows).sum(axis=1))


@criteria.register("l2")
class L2Importance(Importance):
    """Euclidean norm of all the channel's weights across the whole group."""

    def __call__(self, graph, batch=None):
        squares = _accumulate_weights(graph, lambda rows: np.square(rows).sum(axis=1))
        return [np.sqrt(s) for s in squares]


@criteria.register("bn_scale")
class BNScaleImportance(Importance):
    """Network Slimming: |gamma| of the BatchNormalization layers in the group.

    Groups with no BatchNormalization use `fallback` (a criterion name) or raise if it is None.
    """

    def __init__(self, fallback: str | None = "l1"):
        if fallback is not None and fallback not in criteria.names():
            raise ValueError(f"Unknown fallback criterion. Received: fallback={fallback!r}")
        if fallback == "bn_scale":
            raise ValueError("bn_scale cannot fall back to itself. Received: fallback='bn_scale'")
        self.fallback = fallback

    def __call__(self, graph, batch=None):
        def is_gamma(layer, name):
            return isinstance(layer, keras.layers.BatchNormalization) and name == "gamma"

        scores = _accumulate_weights(graph, lambda rows: np.abs(rows).sum(axis=1), is_gamma)
        has_bn = [
            any(isinstance(graph.record_by_path(p).layer, keras.layers.BatchNormalization)
                and graph.record_by_path(p).layer.scale for p in g.layers)
            for g in graph.groups
        ]  # fmt: skip
        missing = [g.id for g, ok in zip(graph.groups, has_bn, strict=True) if not ok]
        if missing:
            if self.fallback is None:
                raise ValueError(f"Criterion bn_scale: groups without a scaled BatchNormalization: {missing}")
            other = get_criterion(self.fallback)(graph, batch)
            scores = [o if not ok else s for s, o, ok in zip(scores, other, has_bn, strict=True)]
        return scores

    def get_config(self):
        return {"fallback": self.fallback}


@criteria.register("random")
class RandomImportance(Importance):
    """Uniform random scores from `seed`: identical on every worker; a baseline."""

    def __init__(self, seed: int = 0):
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
        self.seed = seed

    def __call__(self, graph, batch=None):
        rng = np.random.default_rng(self.seed)
        return [rng.random(g.size) for g in graph.groups]

    def get_config(self):
        return {"seed": self.seed}


# ------------------------------------------------------------------ activation criteria


class _ActivationImportance(Importance):
    """Reads the tensors entering channel-mixing layers (where a channel is consumed)."""

    needs_data = True
    name = ""

    def _covered(self, graph: DependencyGraph) -> tuple[list, list[int]]:
        """The anchors that carry some group, and the groups no anchor carries (indices)."""
        covered: set[int] = set()
        anchors = []
        for anchor in graph.anchors:
            groups = set(np.unique(graph.locate(anchor.ids)[0]).tolist()) - {-1}
            if groups:
                anchors.append(anchor)
                covered |= groups
        return anchors, [g.index for g in graph.groups if g.index not in covered]

    def _anchors(self, graph: DependencyGraph):
        anchors, unseen = self._covered(graph)
        missing = [graph.groups[i].id for i in unseen]
        if missing:
            raise ValueError(
                f"Criterion {self.name!r} cannot see the activations of groups {missing}: no "
                "top-level tensor carries them (attention heads live inside their layer; other "
                "channels may be consumed only inside nested models). Use a weight criterion "
                "(l1, l2, bn_scale)."
            )
        return anchors

    def _require(self, batch: ScoringBatch | None, targets: bool) -> ScoringBatch:
        if batch is None or batch.x is None or (targets and batch.y is None):
            what = "inputs and targets" if targets else "inputs"
            raise ValueError(f"Criterion {self.name!r} needs a batch of {what} to score channels.")
        return batch

    def _probe(self, graph: DependencyGraph, anchors) -> keras.Model:
        model = graph.model
        outputs = list(model.outputs)
        return keras.Model(model.input, outputs + [a.tensor for a in anchors])

    @staticmethod
    def _per_channel(values: np.ndarray) -> np.ndarray:
        """(batch, ..., C) -> (batch, C) summed over the positions in between."""
        return values.reshape(values.shape[0], -1, values.shape[-1]).sum(axis=1)


@criteria.register("taylor")
class TaylorImportance(_ActivationImportance):
    """First-order Taylor (Molchanov et al. 2017): mean over the batch of |sum a * dL/da|. Groups
    no tensor carries (attention heads) are scored on their weights: sum |w * dL/dw| (2019)."""

    name = "taylor"

    def __call__(self, graph, batch=None):
        import tensorflow as tf  # the Keras TF backend; only gradient criteria need it

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("Criterion 'taylor' needs the TensorFlow backend of Keras.")
        batch = self._require(batch, targets=True)
        anchors, unseen = self._covered(graph)
        probe = self._probe(graph, anchors)
        n_out = len(graph.model.outputs)
        loss_fn = keras.losses.get(batch.loss)
        variables = [v for r in graph.layer_records() for v in r.weights if v.trainable] if unseen else []
        with tf.GradientTape() as tape:
            results = probe(batch.x, training=False)
            preds, acts = results[:n_out], results[n_out:]
            loss = loss_fn(batch.y, preds[0] if n_out == 1 else preds)
            loss = tf.reduce_mean(loss)
        grads, weight_grads = tape.gradient(loss, [acts, variables])
        scores = [np.zeros(g.size) for g in graph.groups]
        for anchor, a, g in zip(anchors, acts, grads, strict=True):
            contrib = self._per_channel(np.asarray(a) * np.asarray(g))  # (batch, C)
            _scatter(graph, anchor.ids, np.abs(contrib).mean(axis=0), scores)
        if unseen:  # groups no tensor carries (attention heads): first-order Taylor on weights
            products = {id(v): np.abs(np.asarray(v) * np.asarray(tf.convert_to_tensor(g)))
                        for v, g in zip(variables, weight_grads, strict=True) if g is not None}  # fmt: skip

            def taylor_of(record):
                return {
                    weight_key(record.layer, v): products[id(v)] for v in record.weights if id(v) in products
                }

            by_weight = _accumulate_weights(graph, lambda rows: rows.sum(axis=1), values=taylor_of)
            for i in unseen:
                scores[i] = by_weight[i]
        return scores


@criteria.register("apoz")
class APoZImportance(_ActivationImportance):
    """Average Percentage of Zeros (Hu et al. 2016): score = 1 - fraction of zero activations."""

    name = "apoz"

    def __call__(self, graph, batch=None):
        batch = self._require(batch, targets=False)
        anchors = self._anchors(graph)
        probe = self._probe(graph, anchors)
        n_out = len(graph.model.outputs)
        acts = probe(batch.x, training=False)[n_out:]
        scores = [np.zeros(g.size) for g in graph.groups]
        counts = [np.zeros(g.size) for g in graph.groups]
        for anchor, a in zip(anchors, acts, strict=True):
            a = keras.ops.convert_to_numpy(a)
            nonzero = (a.reshape(-1, a.shape[-1]) != 0).mean(axis=0)
            _scatter(graph, anchor.ids, nonzero, scores)
            _scatter(graph, anchor.ids, np.ones_like(nonzero), counts)
        return [s / np.maximum(c, 1) for s, c in zip(scores, counts, strict=True)]

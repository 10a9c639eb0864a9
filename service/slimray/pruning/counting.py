"""Parameters and FLOPs per sample, per layer and in total: what pruning actually saves."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from slimray.pruning.graph import DependencyGraph, build_graph


@dataclass(frozen=True)
class LayerCost:
    path: str
    class_name: str
    params: int
    flops: int


@dataclass(frozen=True)
class ModelCost:
    """Totals and the per-layer breakdown; FLOPs count a multiply-add as 2, per sample."""

    params: int
    flops: int
    layers: tuple[LayerCost, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "flops": self.flops,
            "layers": [asdict(layer) for layer in self.layers],
        }


def count_model(model: Any, graph: DependencyGraph | None = None) -> ModelCost:
    """Count `model`; every call of a shared layer adds its FLOPs, its weights count once."""
    graph = graph or build_graph(model)
    layers = []
    for record in graph.layer_records():
        params = sum(math.prod(w.shape) for w in record.weights)
        flops = int(sum(record.handler.flops(record.layer, call) for call in record.calls))
        layers.append(LayerCost(record.path, type(record.layer).__name__, params, flops))
    return ModelCost(
        params=int(model.count_params()),
        flops=sum(layer.flops for layer in layers),
        layers=tuple(layers),
    )

"""Layers kept whole: those the pruner cannot see through (partial pruning), and the share of
the model's FLOPs each one holds whole, which is what supporting it could let pruning reach."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from slimray.pruning.atoms import ChannelAtoms, Ids


@dataclass(frozen=True)
class KeptWhole:
    """A layer or op node the pruner cannot see through: its channels are kept whole."""

    path: str  # nested models joined by '/', e.g. "block/inner_conv"
    operation: str  # as the user wrote it, e.g. "keras.layers.LSTM" or "keras.ops.add"
    reason: str
    # share of the model's FLOPs in channels only layers kept whole keep whole, this one among them
    flops_share: float = 0.0

    def describe(self) -> str:
        return f"'{self.path}' ({self.operation}): {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_flops_shares(
    kept_whole: list[KeptWhole], atoms: ChannelAtoms, records: Sequence[Any]
) -> list[KeptWhole]:
    """Each layer's `flops_share`: FLOPs of the traced `records` (those pruned through; each with
    `handler`, `layer`, `calls`, `in_ids`, `out_ids`), weighted by the fraction of their work that
    touches a channel it holds (1 - (1 - a)(1 - b) for input and output fractions a and b), over
    the model's total."""
    if not kept_whole:
        return kept_whole
    roots = atoms.roots()
    costs = [sum(r.handler.flops(r.layer, call) for call in r.calls) for r in records]
    total = max(sum(costs), 1)
    shares = {}
    for path, held in _held_roots(atoms, roots).items():
        locked = 0.0
        for record, cost in zip(records, costs, strict=True):
            if cost and held:
                a, b = _held_fraction(roots, record.in_ids, held), _held_fraction(roots, record.out_ids, held)
                locked += cost * (1.0 - (1.0 - a) * (1.0 - b))
        shares[path] = locked / total
    return [replace(k, flops_share=round(shares.get(k.path, 0.0), 6)) for k in kept_whole]


def _held_fraction(roots: np.ndarray, ids_list: list[Ids], held: set[int]) -> float:
    """The fraction of a layer's first input (or output) channels in `held`."""
    if not ids_list or not len(ids_list[0]):
        return 0.0
    return float(np.isin(roots[ids_list[0]], list(held)).mean())


def _held_roots(atoms: ChannelAtoms, roots: np.ndarray) -> dict[str, set[int]]:
    """Per layer kept whole, the channel roots it fixes that nothing else fixes (model inputs and
    outputs, a softmax, stay fixed whatever is supported)."""
    by_layer: dict[str, set[int]] = {}
    elsewhere: set[int] = set()
    for i, ids in enumerate(atoms.fixed):
        owner = atoms.fixed_by.get(i)
        target = by_layer.setdefault(owner, set()) if owner else elsewhere
        target.update(roots[ids].tolist())
    return {path: held - elsewhere for path, held in by_layer.items()}

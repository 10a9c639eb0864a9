"""Mask planning: from group scores to the channels each group keeps, identically everywhere.

Deterministic given the scores: ties go to the lower channel index, so every worker agrees.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimray.core.registry import Configurable
from slimray.pruning.costs import CostModel, CostTarget
from slimray.pruning.graph import DependencyGraph

NORMALIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda s: s / (np.mean(s) + 1e-12),
    "max": lambda s: s / (np.max(s) + 1e-12),
    "sum": lambda s: s / (np.sum(s) + 1e-12),
    "none": lambda s: s,
}
SCOPES = ("local", "global")


@dataclass(frozen=True)
class Threshold:
    """The importance-threshold rule: a group keeps every channel whose normalized score (the
    planner's `normalizer`) is at least `tau`; how much goes is an outcome, not a target."""

    tau: float

    def __post_init__(self) -> None:
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, float)) or not self.tau > 0:
            raise ValueError(f"threshold must be a number > 0. Received: threshold={self.tau!r}")

    def keep_counts(self, normalizer: str, scores: Sequence[np.ndarray]) -> list[int]:
        """Per group, how many channels score at least `tau` once normalized within the group."""
        norm = NORMALIZERS[normalizer]
        return [int(np.sum(norm(np.asarray(s, dtype=np.float64)) >= self.tau)) for s in scores]


@dataclass(frozen=True)
class PrunePlan:
    """Kept channel indices per group id (sorted), plus each group's size when planned."""

    keep: dict[str, tuple[int, ...]]
    sizes: dict[str, int]

    @property
    def digest(self) -> str:
        """SHA-256 of the plan: workers compare it to prove they hold the same mask."""
        blob = json.dumps({k: list(v) for k, v in sorted(self.keep.items())}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def masks(self, graph: DependencyGraph) -> list[np.ndarray]:
        """Boolean keep mask per group, in the graph's group order."""
        out = []
        for group in graph.groups:
            mask = np.zeros(group.size, dtype=bool)
            kept = self.keep.get(group.id)
            if kept is None:
                mask[:] = True
            else:
                if self.sizes.get(group.id) != group.size:
                    raise ValueError(
                        f"Plan for group '{group.id}' was made for {self.sizes.get(group.id)} "
                        f"channels; the model has {group.size}"
                    )
                mask[list(kept)] = True
            out.append(mask)
        return out

    @property
    def removed(self) -> int:
        return sum(self.sizes[g] - len(k) for g, k in self.keep.items())

    def to_dict(self) -> dict[str, Any]:
        return {"keep": {k: list(v) for k, v in self.keep.items()}, "sizes": dict(self.sizes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrunePlan:
        return cls(
            keep={k: tuple(int(i) for i in v) for k, v in data["keep"].items()},
            sizes={k: int(v) for k, v in data["sizes"].items()},
        )


def _choose(group: Any, scores: np.ndarray, k: int) -> tuple[int, ...]:
    """The `k` best channels, but at least the best of each producer's segment: a group that
    spans several producers (a Concatenate tied to another tensor) never empties one of them."""
    order = _order(scores)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    chosen = {min(seg, key=lambda c: rank[c]) for seg in group.segments if seg}
    for c in order.tolist():
        if len(chosen) >= k:
            break
        chosen.add(int(c))
    return tuple(sorted(int(c) for c in chosen))


def _order(scores: np.ndarray) -> np.ndarray:
    """Channel indices from most to least important; ties go to the lower index."""
    return np.lexsort((np.arange(len(scores)), -scores))


class MaskPlanner(Configurable):
    """Chooses how many channels each group keeps and which ones.

    Sparsity is relative to `baseline_sizes` (the unpruned widths), so iterative schedules reach
    their target instead of compounding.
    """

    def __init__(
        self,
        scope: str = "local",
        min_channels: int = 1,
        round_to: int = 1,
        normalizer: str = "mean",
    ):
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}. Received: scope={scope!r}")
        if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
            raise ValueError(f"min_channels must be an integer >= 1. Received: min_channels={min_channels!r}")
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise ValueError(f"round_to must be an integer >= 1. Received: round_to={round_to!r}")
        if normalizer not in NORMALIZERS:
            raise ValueError(
                f"normalizer must be one of {sorted(NORMALIZERS)}. Received: normalizer={normalizer!r}"
            )
        self.scope = scope
        self.min_channels = min_channels
        self.round_to = round_to
        self.normalizer = normalizer

    def get_config(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "min_channels": self.min_channels,
            "round_to": self.round_to,
            "normalizer": self.normalizer,
        }

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        graph: DependencyGraph,
        scores: Sequence[np.ndarray],
        sparsity: float | Threshold | CostTarget,
        baseline_sizes: Mapping[str, int] | None = None,
    ) -> PrunePlan:
        """Keep-sets for every group: at `sparsity` (fraction of baseline channels removed), by a
        `Threshold` (the channels scoring below it go; `scope` makes no difference then), or within
        a `CostTarget` (the least channels removed, in `scope`'s order, that fit its budget)."""
        groups = graph.groups
        if len(scores) != len(groups):
            raise ValueError(f"Got scores for {len(scores)} groups; the graph has {len(groups)}")
        if isinstance(sparsity, Threshold):
            return self._plan(groups, scores, sparsity.keep_counts(self.normalizer, scores))
        if isinstance(sparsity, CostTarget):
            return self._within_budget(graph, scores, sparsity, baseline_sizes)
        return self._plan(groups, scores, self._sparsity_counts(groups, scores, sparsity, baseline_sizes))

    def _plan(self, groups, scores, counts) -> PrunePlan:
        """The plan keeping `counts` channels per group (floored and rounded), the best-scored."""
        keep = {}
        for group, s, k in zip(groups, scores, counts, strict=True):
            k = max(k, self._floor(group.size))
            keep[group.id] = _choose(group, np.asarray(s), self._rounded(k, group.size))
        return PrunePlan(keep=keep, sizes={g.id: g.size for g in groups})

    def _within_budget(self, graph, scores, target: CostTarget, baseline_sizes) -> PrunePlan:
        """Bisect the removal order (global: channels least important first; local: one sparsity
        for every group) for the shortest prefix whose plan the cost model puts within budget; a
        budget out of reach gets the whole order (every group at its floor)."""
        groups, costs = graph.groups, CostModel(graph)
        budget = target.budget(costs.current[target.metric])
        counts_at, n = self._removal_order(groups, scores, baseline_sizes)

        def fits(i: int) -> bool:
            plan = self._plan(groups, scores, counts_at(i))
            return costs.count(plan.masks(graph))[target.metric] <= budget

        lo, hi = 0, n
        if fits(0):
            hi = 0
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return self._plan(groups, scores, counts_at(hi))

    def _removal_order(self, groups, scores, baseline_sizes) -> tuple[Callable[[int], list[int]], int]:
        """`counts_at(i)`, the keep counts after the first `i` removals of `scope`'s order (cost
        falls as `i` grows), and the order's length."""
        if self.scope == "local":
            base = {g.id: int((baseline_sizes or {}).get(g.id, g.size)) for g in groups}
            grid = max(base.values(), default=1)  # one sparsity step per channel of the widest group

            def local_counts(i: int) -> list[int]:
                sparsity = min(i / grid, 1 - 1e-9)
                return [self._local_keep(base[g.id], g.size, sparsity) for g in groups]

            return local_counts, grid
        removals = self._global_removals(groups, scores)
        sizes = np.asarray([g.size for g in groups], dtype=np.int64)
        order = np.asarray(removals, dtype=np.int64)
        return lambda i: (sizes - np.bincount(order[:i], minlength=len(groups))).tolist(), len(removals)

    def _global_removals(self, groups, scores) -> list[int]:
        """The group of each channel removal in global order: the least important channel first
        (scores normalized within their group), skipping a group once it is at its floor."""
        norm = NORMALIZERS[self.normalizer]
        candidates = []
        for g, s in zip(groups, scores, strict=True):
            s = norm(np.asarray(s, dtype=np.float64))
            for rank, c in enumerate(_order(s)[::-1]):  # least important first
                candidates.append((float(s[c]), g.index, rank))
        candidates.sort()
        counts, removals = [g.size for g in groups], []
        for _, gi, _ in candidates:
            if counts[gi] > self._floor(groups[gi].size):
                counts[gi] -= 1
                removals.append(gi)
        return removals

    def _sparsity_counts(self, groups, scores, sparsity, baseline_sizes) -> list[int]:
        """How many channels each group keeps at `sparsity` of the baseline, by `scope`."""
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1). Received: sparsity={sparsity!r}")
        base = {g.id: int((baseline_sizes or {}).get(g.id, g.size)) for g in groups}
        if self.scope == "local":
            return [self._local_keep(base[g.id], g.size, sparsity) for g in groups]
        return self._global_keep(groups, scores, base, sparsity)

    def _floor(self, size: int) -> int:
        return min(self.min_channels, size)

    def _local_keep(self, baseline: int, size: int, sparsity: float) -> int:
        target = baseline - math.floor(sparsity * baseline)
        return min(size, max(target, self._floor(size)))

    def _rounded(self, keep: int, size: int) -> int:
        return min(size, math.ceil(keep / self.round_to) * self.round_to)

    def _global_keep(self, groups, scores, base, sparsity) -> list[int]:
        total_base = sum(base.values())
        target_keep = total_base - math.floor(sparsity * total_base)
        to_remove = sum(g.size for g in groups) - target_keep
        if to_remove <= 0:
            return [g.size for g in groups]
        counts_at, n = self._removal_order(groups, scores, None)
        return counts_at(min(to_remove, n))

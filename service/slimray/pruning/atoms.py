"""Channel atoms: every position along a traced tensor's channel axis is an atom. Atoms a layer
ties (a residual add, a shared layer) are one channel (union-find); atoms made together are one
channel space, and tied spaces are one group. Fixed atoms are kept whole."""

from __future__ import annotations

import numpy as np

from slimray.pruning.errors import UnsupportedLayerError

Ids = np.ndarray


def find_root(parent: list[int], x: int) -> int:
    """Union-find root with path halving."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


class ChannelAtoms:
    """The atoms of one traced model; `fixed_by` says which kept-whole layer fixed each entry of
    `fixed` (entries fixed for other reasons: model inputs and outputs, a softmax, have none)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.space: list[int] = []  # atom -> the space it was created in
        self.space_parent: list[int] = []
        self.space_owner: list[str] = []  # the path of the layer that created each space
        self.fixed: list[Ids] = []
        self.fixed_by: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def new(self, size: int | None, owner: str) -> Ids:
        """`size` new atoms in a new space owned by `owner` (a layer's path, or "input")."""
        if size is None:
            raise UnsupportedLayerError(owner, "has an unknown channel count (None)")
        start = len(self.parent)
        space = len(self.space_parent)
        self.space_parent.append(space)
        self.space_owner.append(owner)
        self.parent.extend(range(start, start + size))
        self.space.extend([space] * size)
        return np.arange(start, start + size, dtype=np.int64)

    def union(self, a: Ids, b: Ids, where: str) -> None:
        """Tie position i of `a` to position i of `b` (and their spaces)."""
        if len(a) != len(b):
            raise UnsupportedLayerError(where, f"joins tensors with {len(a)} and {len(b)} channels")
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[ry] = rx
                sx, sy = self.space_find(self.space[x]), self.space_find(self.space[y])
                if sx != sy:
                    self.space_parent[sy] = sx

    def fix(self, ids: Ids) -> None:
        self.fixed.append(np.asarray(ids))

    def attribute_fixed(self, since: int, path: str) -> None:
        """Every entry fixed from index `since` on was fixed by the kept-whole layer `path`."""
        for i in range(since, len(self.fixed)):
            self.fixed_by[i] = path

    def find(self, x: int) -> int:
        return find_root(self.parent, x)

    def space_find(self, x: int) -> int:
        return find_root(self.space_parent, x)

    def roots(self) -> np.ndarray:
        """The channel (root atom) of every atom."""
        n = len(self.parent)
        return np.fromiter((self.find(a) for a in range(n)), dtype=np.int64, count=n)

    def spaces(self) -> np.ndarray:
        """The group space (root space) of every atom."""
        n = len(self.parent)
        return np.fromiter((self.space_find(self.space[a]) for a in range(n)), dtype=np.int64, count=n)

    def fixed_roots(self, roots: np.ndarray) -> set[int]:
        out: set[int] = set()
        for ids in self.fixed:
            out.update(roots[ids].tolist())
        return out

"""Channel groups: every channel that must be removed together, numbered from the traced atoms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimray.pruning.atoms import ChannelAtoms


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


@dataclass
class GroupIndex:
    """The groups of a traced model and where every atom falls: its group and its channel in
    that group (-1 for both when it is kept whole)."""

    groups: list[Group]
    atom_group: np.ndarray
    atom_chan: np.ndarray


def number_groups(atoms: ChannelAtoms, records: Iterable[Any]) -> GroupIndex:
    """Number the prunable channels: each unfixed root of tied atoms is one channel of the group
    its channel space belongs to. `records` (with `path` and `param_axes()`) name the members."""
    roots = atoms.roots()
    group_of_space, group_roots, chan_of_root = _number_channels(atoms, roots)
    atom_group = np.full(len(atoms), -1, dtype=np.int64)
    atom_chan = np.full(len(atoms), -1, dtype=np.int64)
    for atom in range(len(atoms)):
        gc = chan_of_root.get(int(roots[atom]))
        if gc is not None:
            atom_group[atom], atom_chan[atom] = gc
    count = len(group_roots)
    owners = _group_owners(atoms, group_of_space, count)
    members = _group_members(records, atom_group, count)
    segments = _group_segments(atoms, atom_group, atom_chan, count)
    groups = [
        Group(
            index=g,
            id="+".join(sorted(owners[g])) or f"group{g}",
            size=len(group_roots[g]),
            layers=tuple(members[g]),
            segments=tuple(tuple(sorted(c)) for c in segments[g].values()),
        )
        for g in range(count)
    ]
    return GroupIndex(groups, atom_group, atom_chan)


def _number_channels(
    atoms: ChannelAtoms, roots: np.ndarray
) -> tuple[dict[int, int], list[list[int]], dict[int, tuple[int, int]]]:
    """Group index of each channel space, each group's roots, and each root's (group, channel).
    Atoms go in creation order, so channel order follows the first producer."""
    fixed_roots = atoms.fixed_roots(roots)
    spaces = atoms.spaces()
    group_of_space: dict[int, int] = {}
    group_roots: list[list[int]] = []
    chan_of_root: dict[int, tuple[int, int]] = {}
    for atom in range(len(roots)):
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


def _group_owners(atoms: ChannelAtoms, group_of_space: dict[int, int], count: int) -> dict[int, list[str]]:
    """The layers whose output spaces make each group (its id); model inputs are not owners."""
    owners: dict[int, list[str]] = {g: [] for g in range(count)}
    for s in range(len(atoms.space_parent)):
        g = group_of_space.get(atoms.space_find(s))
        if g is not None and atoms.space_owner[s] != "input":
            owners[g].append(atoms.space_owner[s])
    return owners


def _group_members(records: Iterable[Any], atom_group: np.ndarray, count: int) -> dict[int, list[str]]:
    """Every layer with a weight axis on each group's channels."""
    members: dict[int, list[str]] = {g: [] for g in range(count)}
    for record in records:
        touched = set()
        for axes in record.param_axes().values():
            for ids in axes.values():
                touched.update(atom_group[ids].tolist())
        for g in touched - {-1}:
            members[g].append(record.path)
    return members


def _group_segments(
    atoms: ChannelAtoms, atom_group: np.ndarray, atom_chan: np.ndarray, count: int
) -> dict[int, dict[int, set[int]]]:
    """Each group's channels by the space each atom was created in: one producer's outputs."""
    segments: dict[int, dict[int, set[int]]] = {g: {} for g in range(count)}
    for atom in range(len(atoms)):
        g = int(atom_group[atom])
        if g >= 0:
            segments[g].setdefault(atoms.space[atom], set()).add(int(atom_chan[atom]))
    return segments

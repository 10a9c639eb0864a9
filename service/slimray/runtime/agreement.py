"""Mask agreement: every worker proves it holds the same pruning plan before any surgery."""

from __future__ import annotations

import hashlib

import numpy as np

from slimray.pruning import PrunePlan, Reducer


class MaskDisagreementError(RuntimeError):
    """Workers computed different masks; training on them would silently corrupt the model."""


def group_digests(plan: PrunePlan) -> tuple[list[str], np.ndarray]:
    """Group ids (sorted) and a 28-bit digest of each group's kept channels, exact in float64."""
    ids = sorted(plan.keep)
    values = []
    for gid in ids:
        blob = f"{gid}:{plan.sizes[gid]}:{','.join(map(str, plan.keep[gid]))}".encode()
        values.append(int(hashlib.sha256(blob).hexdigest()[:7], 16))
    return ids, np.asarray(values, dtype=np.float64)


def check_agreement(plan: PrunePlan, reducer: Reducer, step: int) -> None:
    """Allreduce min and max of every group digest; any difference stops the job, naming it."""
    ids, digests = group_digests(plan)
    low, high = reducer.allmin(digests), reducer.allmax(digests)
    bad = [gid for gid, lo, hi in zip(ids, low, high, strict=True) if lo != hi]
    if bad:
        raise MaskDisagreementError(
            f"workers disagree on the pruning mask of group '{bad[0]}' at step {step}"
            + (f" (and {len(bad) - 1} more: {bad[1:]})" if len(bad) > 1 else "")
            + "; refusing to train on divergent models"
        )

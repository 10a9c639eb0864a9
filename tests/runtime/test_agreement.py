"""Mask agreement: identical plans pass, any difference names the group and the step."""

from __future__ import annotations

import numpy as np
import pytest

from slimray.pruning import PrunePlan
from slimray.runtime.agreement import MaskDisagreementError, check_agreement, group_digests
from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer

PLAN = PrunePlan({"conv1": (0, 2), "fc": (1, 3, 4)}, {"conv1": 4, "fc": 6})


class _TwoWorkers:
    """Injects the other worker's digests: min/max over this worker's and theirs."""

    def __init__(self, other: np.ndarray):
        self.other = other

    def allmin(self, v):
        return np.minimum(v, self.other)

    def allmax(self, v):
        return np.maximum(v, self.other)


def test_identical_plans_agree():
    _, digests = group_digests(PLAN)
    check_agreement(PLAN, _TwoWorkers(digests), step=30)
    check_agreement(PLAN, TFCollectiveReducer(rank=0, world_size=1), step=30)


def test_a_different_mask_names_the_group_and_step():
    other = PrunePlan({"conv1": (0, 2), "fc": (1, 3, 5)}, PLAN.sizes)
    _, theirs = group_digests(other)
    with pytest.raises(MaskDisagreementError, match=r"group 'fc' at step 30"):
        check_agreement(PLAN, _TwoWorkers(theirs), step=30)


def test_digests_are_exact_in_float64():
    ids, digests = group_digests(PLAN)
    assert ids == ["conv1", "fc"]
    assert all(float(int(d)) == d and d < 2**28 for d in digests)

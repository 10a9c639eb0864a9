"""Issue 11: the largest `keras.applications` models prune like the rest; marked slow (up to
~30 s and 5 GB each): `make test` runs each family's first and largest member, `make test-fast`
none, `make test-members` the members between (marked `members`). Each is pruned once (Taylor
scores, global scope) when a smaller member of its family is pruned both ways."""

from __future__ import annotations

import pytest

from tests.pruning.applications import LARGE, MIDDLE_MEMBERS, check_application, passes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.members) if n in MIDDLE_MEMBERS else n for n in LARGE]
)
def test_large_application_prunes_fully(name, tmp_path):
    check_application(name, tmp_path, passes=passes(name))

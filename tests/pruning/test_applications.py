"""Issue 11: every `keras.applications` model (weights=None, its smallest input, 10 classes)
prunes at 0.5 with l1 in local scope and taylor in global scope (a family's larger members: taylor
in global scope alone): parameters and FLOPs fall, the output shape holds, the model saves and
reloads, and nothing is kept whole (the README's catalogue). The largest are in
test_applications_large, marked slow."""

from __future__ import annotations

import pytest

from tests.pruning.applications import (
    LARGE,
    LATER_MEMBERS,
    MIDDLE_MEMBERS,
    check_application,
    every_application,
    passes,
)

pytestmark = pytest.mark.timeout(900)


def test_the_catalogue_is_every_application_keras_exports():
    assert set(LARGE) <= set(every_application()) and set(every_application()) > LATER_MEMBERS
    assert set(LARGE) & LATER_MEMBERS > MIDDLE_MEMBERS  # each family keeps its first and largest
    assert len(every_application()) >= 40  # Keras 3.15: 40 models in 17 families


@pytest.mark.parametrize("name", [n for n in every_application() if n not in LARGE])
def test_application_prunes_fully(name, tmp_path):
    check_application(name, tmp_path, passes=passes(name))

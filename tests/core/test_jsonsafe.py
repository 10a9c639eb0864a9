"""`jsonsafe.finite` and `deeper_than`: strict JSON at any depth (issue 23 L2)."""

from __future__ import annotations

import json
import math
import sys

from slimray.core.jsonsafe import deeper_than, finite


def _nested(depth, leaf):
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value, math.inf]
    return value


def test_finite_copies_deeper_than_the_recursion_limit():
    """Regression: `finite` recursed, and a driver event nested deep raised RecursionError."""
    depth = sys.getrecursionlimit() * 3
    copied = finite(_nested(depth, float("nan")))
    for i in reversed(range(depth)):
        if i % 2:
            copied = copied["a"]
        else:
            assert copied[1] is None
            copied = copied[0]
    assert copied is None


def test_finite_keeps_values_order_and_types():
    value = {"b": (1, 2.5, -math.inf), 3: {"x": [math.nan, "s", None, True]}, "a": {}}
    assert finite(value) == {"b": [1, 2.5, None], "3": {"x": [None, "s", None, True]}, "a": {}}
    assert list(finite(value)) == ["b", "3", "a"]
    assert json.dumps(finite(value), allow_nan=False)
    assert finite(math.inf) is None and finite(2.0) == 2.0 and finite("x") == "x"


def test_deeper_than_counts_levels_at_any_depth():
    assert not deeper_than({"a": [1]}, 1) and deeper_than({"a": [[1]]}, 1)
    assert deeper_than(_nested(sys.getrecursionlimit() * 3, 0), 32)

"""Strict-JSON helpers shared by the run reports and the service."""

from __future__ import annotations

import math
from typing import Any


def deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (iterative: safe for any depth)."""
    level = [value]
    for _ in range(limit + 1):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)
                 if isinstance(c, dict | list | tuple)] if level else []  # fmt: skip
        if not level:
            return False
    return True


def _leaf(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _empty(value: Any) -> dict | list | None:
    """The container `finite` fills for `value`, or None for a leaf."""
    if isinstance(value, dict):
        return {}
    if isinstance(value, (list, tuple)):
        return []
    return None


def finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (strict JSON has neither).

    Iterative, with its own stack: any depth the JSON parser accepted is copied without a
    RecursionError (a driver event nested 500 deep gave a 500, issue 23 L2)."""
    root = _empty(value)
    if root is None:
        return _leaf(value)
    stack = [(value, root)]
    while stack:
        source, copy = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            child = _empty(item)
            kept = _leaf(item) if child is None else child
            if isinstance(copy, dict):
                copy[str(key)] = kept
            else:
                copy.append(kept)
            if child is not None:
                stack.append((item, child))
    return root

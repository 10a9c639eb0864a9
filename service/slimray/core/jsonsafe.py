"""Strict-JSON helpers shared by the run reports and the service."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value

"""What a warm cluster's worker processes import as they start (Ray's `preload_python_modules`),
apart from `warm` so that starting a head (the CLI, the service) does not load Ray itself."""

from __future__ import annotations

from typing import Any

# the framework, and slimray's worker loop and Ray Train side (the controller unpickles it)
PRELOADED = ("tensorflow", "keras", "slimray.runtime.worker", "slimray.runtime.cluster")


def warm_system_config() -> dict[str, Any]:
    """The Ray system config of a warm cluster's nodes (`ray start --system-config`)."""
    return {"preload_python_modules": list(PRELOADED)}

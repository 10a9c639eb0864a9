"""The service's contract with the programs it starts as Ray jobs: their entry modules and the tag
the backend probe prints its answer under. Their environment is `slimray.core.envvars.DriverEnv`."""

from __future__ import annotations

DRIVER_MODULE = "slimray.runtime.submitted"  # a submitted job's driver
WARM_MODULE = "slimray.runtime.warm"  # keeps the cluster's worker processes warm between jobs
PROBE_MODULE = "slimray.runtime.probe"  # the backend check: prints PROBE_TAG + JSON
PROBE_TAG = "SLIMRAY_BACKEND_PROBE "  # the executor finds the answer in the driver's log by it

"""Entry point of the service's backend check (`python -m slimray.runtime.probe horovod`): a Ray
job whose tiny task asks a cluster node what the backend lacks, printed as one tagged JSON line."""

from __future__ import annotations

import json
import sys

import ray

from slimray.core.contract import PROBE_TAG
from slimray.runtime.backends import backend_missing, get_backend


def main(argv: list[str]) -> int:
    name = argv[0] if argv else ""
    get_backend(name)  # an unknown name fails here, naming the known ones
    ray.init(log_to_driver=False)
    missing = ray.get(ray.remote(num_cpus=0)(backend_missing).remote(name))
    print(PROBE_TAG + json.dumps({"backend": name, "missing": missing}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

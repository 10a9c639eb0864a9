"""Run the `slimray` command as a user would: `python -m slimray.cli ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from subprocess import CompletedProcess

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def slimray(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CompletedProcess:
    """The command's exit status, stdout and stderr (text)."""
    return subprocess.run([sys.executable, "-m", "slimray.cli", *args], capture_output=True, text=True,
                          env=ENV if env is None else env, timeout=timeout)  # fmt: skip

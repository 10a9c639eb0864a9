"""Patch an unpacked horovod 0.28.1 sdist so it builds against TensorFlow 2.19+ (CPU).

`horovod/tensorflow/xla_mpi_ops.cc` includes XLA headers that TensorFlow 2.19 moved; in a CPU
build the file holds only GPU code, so its body is compiled only with `HAVE_GPU`. A GPU build
would need the XLA ops left out altogether: this patch does not make one.
Usage: python patch_horovod.py <unpacked sdist directory>
"""

from __future__ import annotations

import sys
from pathlib import Path

TARGET = Path("horovod/tensorflow/xla_mpi_ops.cc")
GUARD = "#if TENSORFLOW_VERSION >= 2006000000\n"
PATCHED = "#if TENSORFLOW_VERSION >= 2006000000 && HAVE_GPU  // slimray: CPU builds on TF >= 2.19\n"


def patch(sdist: Path) -> bool:
    """Apply the guard once; True if the file changed. Fails clearly on an unexpected file."""
    path = sdist / TARGET
    text = path.read_text()
    if PATCHED in text:
        return False
    if text.count(GUARD) != 1:
        raise SystemExit(f"{path}: expected exactly one line {GUARD.strip()!r}; not horovod 0.28.1?")
    path.write_text(text.replace(GUARD, PATCHED))
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    changed = patch(Path(sys.argv[1]))
    print(f"{'patched' if changed else 'already patched'}: {Path(sys.argv[1]) / TARGET}")

#!/usr/bin/env bash
# Build horovod 0.28.1 (CPU: TensorFlow + gloo; no MPI, PyTorch or MXNet) into a wheel cached in
# WHEELS (default .tools/wheels), reused when present. About 5 minutes on 2 cores.
# Usage: service/tools/build_horovod.sh <venv python> [wheel directory]
set -euo pipefail
PY=${1:?usage: build_horovod.sh <venv python> [wheel directory]}
WHEELS=${2:-.tools/wheels}
VERSION=0.28.1
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$WHEELS"
if ls "$WHEELS"/horovod-$VERSION-*.whl >/dev/null 2>&1; then
  echo "cached: $(ls "$WHEELS"/horovod-$VERSION-*.whl)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
tar xzf "$work/horovod-$VERSION.tar.gz" -C "$work"
"$PY" "$here/patch_horovod.py" "$work/horovod-$VERSION"
# --no-build-isolation: the build imports the venv's TensorFlow; cmake comes from pip
"$PY" -m pip install --quiet cmake
env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 CMAKE_POLICY_VERSION_MINIMUM=3.5 \
    MAKEFLAGS="-j$(nproc)" \
    "$PY" -m pip wheel --no-deps --no-build-isolation --wheel-dir "$WHEELS" "$work/horovod-$VERSION"
ls "$WHEELS"/horovod-$VERSION-*.whl

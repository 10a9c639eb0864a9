# One image for the slimray service, every Ray head and worker, and KubeRay's RayJob submitter.
#   docker build -t slimray:0.1.0 .                                  TensorFlow for the CPU
#   docker build --build-arg TF_EXTRA=gpu -t slimray:0.1.0-gpu .     TensorFlow with CUDA
#   docker build --build-arg HOROVOD=1 -t slimray:0.1.0-horovod .    plus the Horovod backend (CPU,
#                                                                     gloo; a ~5 min C++ build)
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# 1: build horovod 0.28.1 (patched for TF 2.21) in its own stage; 0: skip it (BuildKit never
# builds the unused stage)
ARG HOROVOD=0

# ---- builder: the slimray wheel (the only stage with build tools)
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY service/ service/
RUN python -m build --wheel --outdir /wheels

# ---- optional: the horovod wheel, built against the same TensorFlow the final stage installs
FROM ${PYTHON_IMAGE} AS horovod-1
ARG TF_EXTRA=cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN if [ "${TF_EXTRA}" != cpu ]; then \
      echo "HOROVOD=1 builds the CPU (gloo) backend only: the TF 2.21 patch leaves no XLA GPU ops" >&2; \
      exit 1; fi
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++=4:12.2.0-3 make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/
# the project's own pins (pyproject.toml's extra) choose TensorFlow
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${TF_EXTRA}]" \
    && service/tools/build_horovod.sh python /horovod-wheels

FROM ${PYTHON_IMAGE} AS horovod-0
RUN mkdir /horovod-wheels

# hadolint ignore=DL3006
FROM horovod-${HOROVOD} AS horovod

# ---- final: Python 3.11, slimray[<tf>,train,service], no compilers
FROM ${PYTHON_IMAGE}
ARG TF_EXTRA=cpu
ARG SLIMRAY_VERSION=0.1.0
ARG SLIMRAY_UID=10001
LABEL org.opencontainers.image.title="slimray" \
      org.opencontainers.image.description="Distributed, pruning-aware training on Ray: service, Ray head/worker and RayJob submitter" \
      org.opencontainers.image.version="${SLIMRAY_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/slimray"

# KubeRay v1.7 execs `bash -c "ulimit -n ...; ray start ..."`, probes with
# `bash -c "wget ... | grep success"` and waits in the submitter with `until python -c ...; sleep 2`:
# bash, grep and sleep are Debian essentials; wget is added here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget=1.21.3-1+deb12u1 \
    && rm -rf /var/lib/apt/lists/*

# group 0 owns what the user writes, so an arbitrary UID in group 0 (OpenShift) works too
RUN useradd --uid "${SLIMRAY_UID}" --gid 0 --create-home --home-dir /home/slimray --shell /bin/bash slimray \
    && mkdir -p /var/lib/slimray \
    && chown "${SLIMRAY_UID}:0" /var/lib/slimray \
    && chmod 0770 /var/lib/slimray

COPY --from=builder /wheels/ /wheels/
COPY --from=horovod /horovod-wheels/ /wheels/
RUN pip install --no-cache-dir "/wheels/slimray-${SLIMRAY_VERSION}-py3-none-any.whl[${TF_EXTRA},train,service]" \
    && if ls /wheels/horovod-*.whl > /dev/null 2>&1; then pip install --no-cache-dir /wheels/horovod-*.whl; fi \
    && rm -rf /wheels

ENV PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0 \
    HOME=/home/slimray \
    KERAS_HOME=/tmp/.keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    SLIMRAY_DB_PATH=/var/lib/slimray/jobs.db \
    SLIMRAY_RUNS_ROOT=/var/lib/slimray/runs
WORKDIR /home/slimray
# with a read-only root filesystem (the chart's default) only /tmp and the volumes are writable
USER ${SLIMRAY_UID}
EXPOSE 8000 8265 6379 8080

# the service's liveness; Ray pods are probed by KubeRay instead (Kubernetes ignores HEALTHCHECK)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "wget --tries 1 -T 3 -q -O- http://127.0.0.1:8000/healthz || exit 1"]

CMD ["slimray", "serve", "--host", "0.0.0.0", "--port", "8000"]

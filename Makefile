# Two commands matter: `make run` (the main job) and `make test` (the whole suite).
# Each works on a fresh machine: it creates .venv and installs what it needs first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint install clean

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

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests benchmarks examples
	$(VENV)/bin/ruff format --check service tests benchmarks examples

clean:
	rm -rf $(VENV) runs .pytest_cache

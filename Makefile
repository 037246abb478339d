# modelrollout: `make demo` runs the main job, `make test` runs every test. Nothing to install by hand:
# Debian packages, the Python virtualenv and the control-plane build are made here, on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Test layers present in the tree, fastest first.
TESTS  := $(wildcard tests/unit tests/integration tests/e2e)
LINTED := operator tests demo hack $(wildcard bench)

.PHONY: help system-deps venv controlplane helm traefik prometheus image lint unit test demo cluster-up cluster-down lock clean crds

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

system-deps: ## install Debian packages the project needs (prometheus, openssl, lua5.1)
	@bash hack/system-deps.sh

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed ## the Python virtualenv, exactly as locked

controlplane: system-deps ## build kube-apiserver & co. from Go modules (once per version set)
	@bash hack/build-control-plane.sh >/dev/null

helm: system-deps ## build helm from its Go module (once per version), for the chart's tests
	@bash hack/build-helm.sh >/dev/null

traefik: system-deps ## build Traefik from its Go module (once per version), the Gateway API data plane
	@bash hack/build-traefik.sh >/dev/null

prometheus: system-deps ## build Prometheus with its Kubernetes discovery (once per version), for the data plane
	@bash hack/build-prometheus.sh >/dev/null

lint: venv ## ruff, mypy --strict, import-linter
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv ## the fast unit tests only
	$(PY) -m pytest tests/unit

test: lint controlplane helm traefik prometheus ## lint, then unit, integration and e2e tests on a real control plane
	MODELROLLOUT_CONTROLPLANE="$$(bash hack/build-control-plane.sh)" \
	MODELROLLOUT_HELM="$$(bash hack/build-helm.sh)" \
	MODELROLLOUT_TRAEFIK="$$(bash hack/build-traefik.sh)" \
	MODELROLLOUT_PROMETHEUS_BUILT="$$(bash hack/build-prometheus.sh)" $(PY) -m pytest --durations=12 $(TESTS)

demo: venv controlplane traefik prometheus ## the main job: real rollouts end to end on a local control plane and data plane
	MODELROLLOUT_CONTROLPLANE="$$(bash hack/build-control-plane.sh)" \
	MODELROLLOUT_TRAEFIK="$$(bash hack/build-traefik.sh)" \
	MODELROLLOUT_PROMETHEUS_BUILT="$$(bash hack/build-prometheus.sh)" $(PY) demo/run.py

cluster-up: venv controlplane traefik prometheus ## start a local cluster (process node, Traefik, Prometheus); print `export KUBECONFIG=`
	@MODELROLLOUT_CONTROLPLANE="$$(bash hack/build-control-plane.sh)" \
	MODELROLLOUT_TRAEFIK="$$(bash hack/build-traefik.sh)" \
	MODELROLLOUT_PROMETHEUS_BUILT="$$(bash hack/build-prometheus.sh)" $(PY) -m modelrollout.testing up

cluster-down: venv ## stop the local control plane started by cluster-up
	@$(PY) -m modelrollout.testing down

crds: venv ## write the CRD, generated from the API models, to crds/ and the chart's crds/
	$(PY) -m modelrollout.api.crd --write .

lock: venv ## re-resolve requirements.lock, then the image's runtime subset, from pyproject.toml
	$(PIP) install pip-tools
	$(VENV)/bin/pip-compile -q --extra dev --extra demo --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
	  -c requirements.lock -o requirements-runtime.lock pyproject.toml

IMAGE ?= ghcr.io/modelrollout/modelrollout:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image: ## build the operator's container image (needs Docker, which our build machines lack)
	@docker info >/dev/null 2>&1 || { echo "make image needs a running Docker engine; this machine has none" >&2; exit 1; }
	docker build -t $(IMAGE) .

clean: ## remove the virtualenv and caches in the tree (not the control-plane build)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

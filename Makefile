# Every target installs what it needs: a virtual environment from the pinned requirements.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.13: prefer it (pyenv keeps it under ~/.pyenv/versions here), else the newest
# python3. A pyenv shim named python3.13 exists even when 3.13 is not the active version, so a
# candidate counts only if it actually runs.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
	$(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null) \
	$(shell python3 -c 'import sys; print(sys.executable)' 2>/dev/null))

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test lint typecheck build security chaos bench bench-quick demo local emulator clean

help:
	@echo "make test      ruff, mypy and the whole pytest suite (creates $(VENV) as needed)"
	@echo "make demo      a real WebRTC exchange whose SDP answer goes through the relay (local stack)"
	@echo "make local     the local stack and the event-source runner, until Ctrl-C"
	@echo "make build     cfn-lint, sam validate, sam build, and the Lambda runtime for local invokes"
	@echo "make chaos     N requests through the local stack under faults, kills and an SNS outage (N=2000)"
	@echo "make emulator  run the KVS signaling emulator on its own (ARGS='--port 8443 ...')"
	@echo "make bench     the relay vs a naive sender: table, bench/results/latest.{json,md,png}"
	@echo "make bench-quick  the same, CI-sized (under a minute after the build)"

$(STAMP): requirements/dev.txt requirements/constraints.txt layers/relay/requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/dev.txt -c requirements/constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# template checks, `sam build` (.aws-sam/build) and the Lambda runtime venv for the RIE invoke
build: $(STAMP)
	bash scripts/sam-check.sh
	bash scripts/lambda-runtime.sh >/dev/null

# checkov on template.yaml (its own venv); cfn-lint runs in `build`
security:
	bash scripts/security-check.sh

N ?= 2000
chaos: build
	$(BIN)/python -m kvs_local.chaos --requests $(N)

test: lint typecheck build security
	KVS_RELAY_REQUIRE_BUILD=1 $(BIN)/pytest
	$(BIN)/python -m kvs_local.chaos --requests 100
	$(BIN)/python -m bench --quick

# The benchmark (bench/README.md): exit 0 whatever the figures, non-zero only if it cannot run.
bench: build
	$(BIN)/python -m bench $(ARGS)

bench-quick: build
	$(BIN)/python -m bench --quick $(ARGS)

demo: build
	$(BIN)/python -m kvs_local.demo $(ARGS)

local: build
	$(BIN)/python -m kvs_local.local $(ARGS)

emulator: $(STAMP)
	$(BIN)/python -m kvs_local.emulator $(ARGS)

clean:
	rm -rf $(VENV) .venv-sam .venv-lambda .venv-checkov .aws-sam .mypy_cache .pytest_cache \
		.ruff_cache .local-stack

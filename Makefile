# Every target that needs the virtualenv depends on its stamp, so `make run` and `make test`
# each work as the very first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tagwarden-installed
# Cloud Custodian pins boto3 exactly, so the benchmarks get a virtualenv of their own.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.tagwarden-bench-installed
# AWS's States Language validator (npm), installed from tests/asl/package-lock.json; npm runs again
# only when the lock file changes, so later runs need no network.
ASL_DIR := tests/asl
ASL_STAMP := $(ASL_DIR)/node_modules/.tagwarden-installed
PIP := $(BIN)/python -m pip
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test unit functional infra iam-check asl-deps lint format bench bench-evaluator bench-scale bench-e2e bench-large-dump bench-fanout bench-lambda bench-events synth sfn-local-test fuzz clean help

help:
	@echo "make run     run a scan of the demo fleet on the embedded Step Functions engine"
	@echo "make test    the whole test suite (unit, functional, infra)"
	@echo "make install only the .venv (with the tagwarden console script at $(BIN)/tagwarden)"
	@echo "make lint    ruff and mypy"
	@echo "make iam-check  every AWS call of the workflow against the synthesized IAM policies (docs/iam.md)"
	@echo "make bench   benchmarks; figures go to BENCHMARKS.md"
	@echo "make synth   synthesize the CDK app into cdk/cdk.out/ (no Docker, no AWS credentials)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tagwarden run

# Two workers (pytest-xdist), one test file each at a time: module fixtures (a deployment on the
# embedded engine, a CDK synthesis) stay per file, and the suite takes about 5 minutes instead of 8.
test: $(STAMP) $(ASL_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

$(ASL_STAMP): $(ASL_DIR)/package.json $(ASL_DIR)/package-lock.json
	cd $(ASL_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

asl-deps: $(ASL_STAMP)

# Records every AWS call of the functional suites (TAGWARDEN_IAM_RECORD), runs the IAM scenarios on
# the embedded engine, evaluates every synthesized template's policies against all of it, prints the
# per-principal table and writes docs/iam.md. (make test runs the scenario check alone.)
IAM_RECORD := build/iam-record
iam-check: $(STAMP)
	rm -rf $(IAM_RECORD)
	TAGWARDEN_IAM_RECORD=$(IAM_RECORD) $(BIN)/python -m pytest -q -n 2 --dist loadfile tests/functional
	$(BIN)/python -m tests.iam --suites $(IAM_RECORD) --write docs/iam.md

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

functional: $(STAMP)
	$(BIN)/python -m pytest -q tests/functional

infra: $(STAMP)
	$(BIN)/python -m pytest -q tests/infra

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check workflow lambdas
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format workflow lambdas tests cdk benchmarks
	$(BIN)/ruff check --fix .

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BENCH_BIN)/python -m pip install --quiet -e '.[bench]'
	$(BENCH_BIN)/python -c "import boto3, c7n.resources.ec2, moto; print('bench venv: boto3', boto3.__version__)"
	@touch $@

bench: bench-evaluator bench-scale bench-e2e bench-large-dump bench-fanout bench-lambda bench-events

bench-evaluator: $(BENCH_STAMP)
	$(BENCH_BIN)/python benchmarks/bench_evaluator.py --instances 100000 --write BENCHMARKS.md

bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py --sizes 1000 10000 100000 --family 100000 --write BENCHMARKS.md

bench-e2e: $(BENCH_STAMP)
	$(BENCH_BIN)/python benchmarks/bench_e2e_c7n.py --instances 5000 --write BENCHMARKS.md
	$(BENCH_BIN)/python benchmarks/bench_e2e_endpoint.py --instances 20000 --write BENCHMARKS.md

bench-large-dump: $(STAMP)
	$(BIN)/python benchmarks/bench_large_dump.py --instances 100000 --write BENCHMARKS.md

# BEFORE_TREE: a checkout of the code to compare with (git worktree add /tmp/before <commit>).
bench-lambda: $(STAMP)
	$(BIN)/python benchmarks/bench_lambda_work.py --sizes 10000 100000 $(if $(BEFORE_TREE),--before-tree $(BEFORE_TREE)) --write BENCHMARKS.md

bench-fanout: $(STAMP)
	$(BIN)/python benchmarks/bench_fanout.py --accounts 2 8 32 --write BENCHMARKS.md

bench-events: $(STAMP)
	$(BIN)/python benchmarks/bench_events.py --events 1000 --batch 250 --write BENCHMARKS.md

synth: $(STAMP)
	cd cdk && ../$(BIN)/python app.py

FUZZ_SECONDS ?= 300
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1

fuzz: $(STAMP)
	@if $(PIP) install --quiet "atheris>=2.3,<4"; then \
	    mkdir -p build/fuzz && \
	    $(BIN)/python tests/fuzz/fuzz_policy.py build/fuzz/policy $(FUZZ_FLAGS) && \
	    $(BIN)/python tests/fuzz/fuzz_fleet.py build/fuzz/fleet $(FUZZ_FLAGS) && \
	    $(BIN)/python tests/fuzz/fuzz_pattern.py build/fuzz/pattern $(FUZZ_FLAGS); \
	else \
	    echo "atheris did not install: running the same properties under hypothesis instead"; \
	    TAGWARDEN_FUZZ_EXAMPLES=50000 $(BIN)/python -m pytest -q tests/fuzz; \
	fi

sfn-local-test: $(STAMP)
	$(BIN)/python -m pytest -q -m docker tests/functional

clean:
	rm -rf $(VENV) .venv-bench $(ASL_DIR)/node_modules cdk.out cdk/cdk.out build tagwarden-out .pytest_cache .mypy_cache .ruff_cache

# Two commands do everything: `make run` and `make test`. Each creates the venv it needs, and
# every venv installs only from a lock with hashes (requirements/*.txt, layers/*/requirements*.txt):
# a fresh clone gets what was tested. `make lock` refreshes the locks; see README, "Dependencies".
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_LOCK := requirements/dev.txt
# pip as the venv has it (23.2+): exact versions with their hashes, nothing else, nothing built
# from the network (the two editable installs use the locked setuptools, without isolation).
LOCKED_INSTALL = -m pip install --quiet --require-hashes --no-deps --only-binary=:all:
EDITABLE_INSTALL = -m pip install --quiet --no-deps --no-build-isolation --no-index
# uWSGI ships no wheels: built from its locked sdist with the dev lock's setuptools (C compiler
# and Python headers needed; pip keeps the built wheel in its cache for the next venv).
UWSGI_LOCK = requirements/uwsgi.txt
SOURCE_INSTALL = -m pip install --quiet --require-hashes --no-deps --no-build-isolation

.PHONY: run test lint typecheck unit cfn-lint bench build clean analyze-once analyze report \
	chromium mutation \
	openapi checkov lock test-latest sam

$(STAMP): $(DEV_LOCK) $(UWSGI_LOCK) pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(LOCKED_INSTALL) -r $(DEV_LOCK)
	$(BIN)/python $(SOURCE_INSTALL) -r $(UWSGI_LOCK)
	$(BIN)/python $(EDITABLE_INSTALL) -e . -e ./clients/python
	touch $(STAMP)

## Start the whole service locally: API on http://localhost:8000, DynamoDB in-process (moto).
run: $(STAMP)
	$(BIN)/abtest serve $(ARGS)

## Run the scheduled analysis once: on the server `make run` started, else on the state file.
analyze-once: $(STAMP)
	$(BIN)/abtest analyze-once $(ARGS)

## An experiment's verdict in the terminal, or its report page, from the running local API:
## `make analyze ID=1`, `make report ID=1` (ARGS="--open" opens it; AB_PORT as for make run).
analyze report: $(STAMP)
	@test -n "$(ID)" || { echo "give the experiment: make $@ ID=1"; exit 2; }
	$(BIN)/abtest $@ $(ID) $(ARGS)

## Lint, type-check, validate the template and run every test; then the local API's tests
## again on moto's own path (AB_MOTO_FAST=0: none of the shortcuts into moto's internals).
test: $(STAMP) chromium lint typecheck cfn-lint
	$(BIN)/pytest -q
	AB_MOTO_FAST=0 $(BIN)/pytest -q $(PLAIN_PATH_TESTS)
# The quick start over HTTP, crash recovery, the two planes, exactly-once (one, and one folded
# batch split over transactions: the folded tests' other cases use the same calls).
PLAIN_PATH_TESTS = tests/e2e/test_quick_start.py tests/e2e/test_crash_recovery.py \
	tests/e2e/test_two_planes.py tests/integration/test_record_result.py \
	tests/integration/test_record_results_folded.py::test_a_group_over_49_results_is_split_and_exact \
	tests/integration/test_record_results_folded.py::test_a_repeated_key_in_a_batch_is_counted_once_and_a_new_value_is_a_409

## Regenerate docs/openapi.json from the models (a test fails while it is stale).
openapi: $(STAMP)
	$(BIN)/python -m ab_testing.openapi --out docs/openapi.json

## Debian's chromium for the report page's browser test (playwright drives it, no download).
chromium:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

## Mutation score of the core modules (mutmut; slow, niced; not part of `make test`).
## Narrow it and give it a budget: make mutation ARGS="--modules ledger store --budget 900"
mutation: $(STAMP)
	nice -n 19 $(BIN)/python mutation/run.py $(ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Security scan of template.yaml; findings not fixed are skipped, each with its reason, in
## .checkov.yaml. checkov lives in its own venv (its pins clash with the project's).
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed-stamp: requirements/checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python $(LOCKED_INSTALL) -r requirements/checkov.txt
	touch $@
checkov: $(CHECKOV_VENV)/.installed-stamp
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

## aws-sam-cli in its own venv (its pins clash with the project's), from requirements/sam.txt.
SAM_VENV ?= .venv-sam
$(SAM_VENV)/.installed-stamp: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python $(LOCKED_INSTALL) -r requirements/sam.txt
	touch $@
sam: $(SAM_VENV)/.installed-stamp

## Build the Lambda artifacts with the locked aws-sam-cli; the layers install their own locks
## (layers/*/requirements*.txt, hashes checked). Needs python3.13 (pyenv here).
build: $(SAM_VENV)/.installed-stamp
	PYENV_VERSION=3.11.7:3.13.0 $(SAM_VENV)/bin/sam build

## The suite on the newest versions pyproject.toml's ranges allow (no lock), in .venv-latest:
## a breaking release upstream is found here, before a `make lock` takes it.
LATEST_VENV ?= .venv-latest
test-latest: chromium
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade -e '.[dev]' -e './clients/python[sigv4]' \
		-r requirements/uwsgi.in
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -i -E '^(moto|boto3|botocore|pydantic|scipy|numpy|aws-lambda-powertools)='
	$(LATEST_VENV)/bin/pytest -q -p no:cacheprovider $(LATEST_SKIP) $(ARGS)
# This venv is on purpose not the lock: the test that it is, is the one test not run here.
LATEST_SKIP = --deselect tests/unit/test_locks.py::test_the_venv_holds_exactly_what_the_dev_lock_pins

## Refresh every lock from its ranges (pyproject.toml, requirements/*.in, layers/*/*.in), keeping
## the pins that still satisfy them. UPGRADE=1 takes the newest of everything; UPGRADE=moto (or
## "moto boto3") the newest of those packages only. Then `make test`, and commit the locks.
LOCK_VENV ?= .venv-lock
UV = $(LOCK_VENV)/bin/uv
UV_UPGRADE = $(if $(filter 1,$(UPGRADE)),--upgrade,$(addprefix --upgrade-package ,$(UPGRADE)))
COMPILE = $(UV) pip compile --quiet --generate-hashes \
	--index-url https://pypi.org/simple --no-config $(UV_UPGRADE)
# The layers as Lambda's python3.13 on x86_64 installs them, at the dev lock's versions.
LAYER_COMPILE = $(COMPILE) --python-version 3.13 --python-platform x86_64-manylinux_2_28 \
	-c $(DEV_LOCK)
$(LOCK_VENV)/.installed-stamp: requirements/uv.txt
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python $(LOCKED_INSTALL) -r requirements/uv.txt
	touch $@
lock: $(LOCK_VENV)/.installed-stamp
	$(COMPILE) --universal --python-version 3.11 --fork-strategy fewest \
		--extra dev --extra mutation --extra sigv4 -o $(DEV_LOCK) \
		pyproject.toml clients/python/pyproject.toml requirements/build.in
	$(LAYER_COMPILE) -o layers/ab_testing/requirements.txt layers/ab_testing/requirements.in
	$(LAYER_COMPILE) --no-deps -o layers/ab_testing/requirements-tracing.txt \
		layers/ab_testing/requirements-tracing.in
	$(LAYER_COMPILE) -o layers/stats_deps/requirements.txt layers/stats_deps/requirements.in
	$(COMPILE) --universal --python-version 3.11 -o requirements/checkov.txt requirements/checkov.in
	$(COMPILE) --universal --python-version 3.11 -o $(UWSGI_LOCK) requirements/uwsgi.in
	$(COMPILE) --universal --python-version 3.11 -o requirements/sam.txt requirements/sam.in
	$(COMPILE) --universal -o requirements/uv.txt requirements/uv.in

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) $(LATEST_VENV) $(LOCK_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .mutation

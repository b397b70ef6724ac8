# Two commands do everything: `make run` and `make test`. Each creates the venv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit cfn-lint bench build clean analyze-once chromium mutation openapi checkov

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./clients/python
	touch $(STAMP)

## Start the whole service locally: API on http://localhost:8000, DynamoDB in-process (moto).
run: $(STAMP)
	$(BIN)/abtest serve $(ARGS)

## Run the scheduled analysis once: on the server `make run` started, else on the state file.
analyze-once: $(STAMP)
	$(BIN)/abtest analyze-once $(ARGS)

## Lint, type-check, validate the template and run every test.
test: $(STAMP) chromium lint typecheck cfn-lint
	$(BIN)/pytest -q

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
	$(BIN)/python -m pip install --quiet -e '.[dev,mutation]'
	nice -n 19 $(BIN)/python mutation/run.py $(ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Security scan of template.yaml; findings not fixed are skipped, each with its reason, in
## .checkov.yaml. checkov lives in its own venv (its pins clash with the project's).
CHECKOV_VENV ?= .venv-checkov
checkov:
	test -x $(CHECKOV_VENV)/bin/checkov || \
		($(PYTHON) -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/pip install --quiet checkov)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

## Build the Lambda artifacts (needs aws-sam-cli installed outside the venv and python3.13).
build:
	PYENV_VERSION=3.11.7:3.13.0 sam build

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .mutation

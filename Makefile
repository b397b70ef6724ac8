# Two commands do everything: `make run` and `make test`. Each creates the venv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit cfn-lint bench build clean analyze-once checkov

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the whole service locally: API on http://localhost:8000, DynamoDB embedded (moto).
run: $(STAMP)
	$(BIN)/abtest serve $(ARGS)

## Run the scheduled analysis once against the local state file.
analyze-once: $(STAMP)
	$(BIN)/abtest analyze-once $(ARGS)

## Lint, type-check, validate the template and run every test.
test: $(STAMP) lint typecheck cfn-lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

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
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

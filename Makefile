# Entry points. `make run` and `make test` are all a newcomer needs (see README).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEV_ENV := DEBUG=true DEMO_MODE=true OUTBOUND_ALLOW_PRIVATE_ADDRESSES=true PUBLIC_BASE_URL=http://$(HOST):$(PORT)

.PHONY: install install-run-deps install-system-test-deps run migrate demo test test-fast lint typecheck bench clean

# The SCORM player's runtime (scorm-again, pinned in package-lock.json), copied into static.
SCORM_RUNTIME := scorm/static/scorm/scorm-again.min.js

install: $(VENV)/.installed $(SCORM_RUNTIME)

$(SCORM_RUNTIME): package-lock.json scripts/vendor-static.sh
	@bash scripts/vendor-static.sh

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $@

# Debian packages the product uses at run time (the PDFs' Unicode fonts). Installed once.
install-run-deps:
	@bash scripts/install-run-deps.sh

# Debian packages the tests talk to (Chromium, SimpleSAMLphp). Installed once.
install-system-test-deps:
	@bash scripts/install-system-test-deps.sh

migrate: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput

demo: migrate
	$(DEV_ENV) $(BIN)/python manage.py demo_load

run: migrate install-run-deps
	@$(DEV_ENV) HOST=$(HOST) PORT=$(PORT) bash scripts/run-dev.sh

test: install install-system-test-deps
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=config.settings_test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy .

bench: install
	@for b in bench/[a-z]*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint check-data system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## serve: serve the bundled dataset with gunicorn on $(HOST):$(PORT)
serve: $(BIN)/.installed
	FEEDSVC_BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c deploy/gunicorn.conf.py wsgi:app

## test: install what the tests need (venv, Debian packages) and run the whole suite
test: $(BIN)/.installed system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff and mypy --strict over the package and the tests
lint: $(BIN)/.installed
	$(BIN)/ruff check feedsvc tests bench wsgi.py
	$(BIN)/mypy

## check-data: validate the dataset (FEEDSVC_DATA or data/)
check-data: $(BIN)/.installed
	$(BIN)/feedsvc check-data $(DATA)

system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

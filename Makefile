# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test flake lint bench check-data system-deps clean soak faults

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

## flake: run the suite N times (default 10) and print, per test, how often it failed
N ?= 10
flake: $(BIN)/.installed system-deps lint
	$(BIN)/python .ci/flake.py $(N) $(PYTEST_ARGS)

## lint: ruff and mypy --strict over the package and the tests
lint: $(BIN)/.installed
	$(BIN)/ruff check feedsvc tests bench wsgi.py .ci/flake.py
	$(BIN)/mypy

## bench: run every benchmark on loopback (wrk, nginx, redis); tables go to bench/results/
bench: $(BIN)/.installed system-deps
	$(BIN)/python -m bench.run

## check-data: validate the dataset (FEEDSVC_DATA or data/)
check-data: $(BIN)/.installed
	$(BIN)/feedsvc check-data $(DATA)

## soak: 256 connections of a realistic mix for SOAK_SECONDS (300) against the shipped gunicorn config
soak: $(BIN)/.installed system-deps
	$(BIN)/python bench/soak.py

## faults: each fault (Redis, invalid/deleted data, SIGKILL, SIGHUP) under load; FAULTS=name picks some
faults: $(BIN)/.installed system-deps
	$(BIN)/python bench/faults.py $(FAULTS)

system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

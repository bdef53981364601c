# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')

.PHONY: setup run test lint protos breaking bench clean

setup: $(VENV)/.installed gen/.generated

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | \
		xargs -I{} sh -c 'printf "%s\n%s\n" "$(CURDIR)" "$(CURDIR)/gen" > {}/crm-paths.pth'
	touch $@

# `npm install` honours the lock (buf is pinned exactly); `npm ci` refuses a lock that lists only the
# platform binaries the registry serves here.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

gen/.generated: $(VENV)/.installed $(PROTOS) tools/gen_protos.py
	$(PY) tools/gen_protos.py
	touch $@

protos: gen/.generated

run: setup
	$(PY) -m tools.run

test: setup node_modules/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -n 2

lint: setup node_modules/.installed
	$(BUF) lint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Throughput figures against servers started here on 127.0.0.1; nothing is asserted.
bench: setup
	$(PY) -m tools.bench

# Guards the released contract: compares against the given git ref (default: main).
AGAINST ?= main
breaking: setup node_modules/.installed
	$(BUF) breaking --against '.git#branch=$(AGAINST)'

clean:
	rm -rf $(VENV) gen build node_modules .data

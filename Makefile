# The two commands of the README: `make demo` runs the main job, `make test`
# runs the tests. Both set up a fresh Debian 12 host first (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BCC_LINK = $(shell $(PY) -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])' 2>/dev/null)/bcc

.PHONY: setup host venv kafka-jars test test-unit lint lint-imports demo bench clean

setup: host venv kafka-jars

host:
	@bash deploy/host/setup.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q -U pip
	@$(PY) -m pip install -q -e '.[test,rocksdb]'
	@touch $@

venv: $(VENV)/.installed
	@# bcc's Python bindings come from Debian (PyPI's "bcc" is another package)
	@if [ -d /usr/lib/python3/dist-packages/bcc ] && [ ! -e "$(BCC_LINK)" ]; then \
	  ln -s /usr/lib/python3/dist-packages/bcc "$(BCC_LINK)"; fi

kafka-jars: venv
	@$(PY) -c 'from eunomia.config import LocalKafkaSettings as S; from eunomia.kafka.jars import ensure_jars; s=S(); print("kafka jars:", ensure_jars(s.cache_dir, s.version))'
	@$(PY) -c 'from eunomia.kafka.schema_registry import ensure_registry; print("schema registry:", ensure_registry())'

lint: venv
	@$(VENV)/bin/ruff check .

test: setup lint-imports
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/pytest -q -ra $(PYTEST_ARGS)

test-unit: venv
	@$(VENV)/bin/pytest -q tests/unit

demo: setup
	@$(VENV)/bin/eunomia demo

bench: setup
	@$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info

# import-linter reads the package tree from disk; the editable install maps
# folders outside eunomia/, so the check runs on a plain install in build/.
lint-imports: venv
	@rm -rf build/imports && $(PY) -m pip install -q --no-deps --no-compile --target build/imports . 2>/dev/null
	@cd build/imports && PYTHONPATH=. $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

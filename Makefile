# Two commands do the whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__UNIT_TEST_MODE := False
# Only folders that exist: git does not keep an empty bench/ in a fresh clone.
LINT_PATHS := $(wildcard plugins dags tests bench)

.PHONY: venv test demo airflow bench lint clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt -c constraints.txt
	$(PIP) install --quiet -e ".[dev,test]" -c constraints.txt
	# The editable install leaves plugins/cxsync.egg-info behind; plugins/ is on every Airflow process's path,
	# so the `airflow.plugins` entry point would be found twice ("Plugin 'cxsync' already registered").
	# The venv's own dist-info is the one copy of the metadata that is needed.
	rm -rf plugins/*.egg-info
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m cxsync_dev.demo

# After `make demo`: the demo's Airflow (api-server, scheduler, dag-processor, triggerer) until Ctrl-C.
airflow: $(STAMP)
	$(PY) -m cxsync_dev.local_airflow

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

clean:
	rm -rf $(VENV) .airflow .pytest_cache

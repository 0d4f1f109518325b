# The two commands of the quick start: `make demo` and `make test`.
# Each creates the virtual environment when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tac-installed
DEMO_OUT ?= demo-out
# `make test` runs the fast suite; `make test TESTS=all` adds the slow end-to-end tests (CI does).
TESTS ?= fast
PYTEST_MARK := $(if $(filter all,$(TESTS)),-m "slow or not slow",)

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[torch,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tac compress -o $(DEMO_OUT) --preset demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 $(PYTEST_MARK)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .hypothesis

# The two commands of the quick start: `make demo` and `make test`.
# Each creates the virtual environment when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tac-installed
DEMO_OUT ?= demo-out
# A new virtual environment takes about 5.7 GiB (PyPI's PyTorch for Linux is its CUDA build).
VENV_GB ?= 6.5
define DISK_CHECK
import os, shutil, sys
where, need = os.path.dirname(os.path.abspath(sys.argv[1])), float(sys.argv[2])
free = shutil.disk_usage(where).free / 2**30
if free < need:
    sys.exit(f"make: a new {sys.argv[1]} needs about {need:g} GiB of free disk; {where} has {free:.1f} GiB (VENV_GB=0 skips this check)")
endef
export DISK_CHECK
# `make test` runs the fast suite; `make test TESTS=all` adds the slow end-to-end tests (CI does).
TESTS ?= fast
PYTEST_MARK := $(if $(filter all,$(TESTS)),-m "slow or not slow",)

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -c "$$DISK_CHECK" $(VENV) $(VENV_GB)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[torch,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tac compress -o $(DEMO_OUT) --preset demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 $(PYTEST_MARK)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .hypothesis

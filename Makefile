# The README's two commands: `make demo` and `make test`. Both create .venv if absent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench,plot]'
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench,plot]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/fastsig check
	$(BIN)/fastsig bench --quick

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q
	FASTSIG_WORKERS=1 $(BIN)/python -m pytest -q tests/test_api.py  # the public API on fastsig's workers
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q tests/cuda
	$(BIN)/python -m pytest -q benchmarks --benchmark-disable --fastsig-max-size=1e5

clean:
	rm -rf $(VENV) build *.egg-info

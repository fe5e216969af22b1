# Two commands do everything: `make run` and `make test` (the fast tier, minutes).
# Both install what is missing into .venv first (make setup). `make test-all` adds
# the slow learning and end-to-end tests (CI runs it).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.clm-installed

.PHONY: setup run test test-all bench clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/clm run --out runs/main-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(BIN)/python -m pytest -m "not slow"

test-all: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache

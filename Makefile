# otakit — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test demo demo-real bench clean vectors

# Create .venv and install the host package plus everything the tests need (and, as root, the
# Debian packages of scripts/install-system-deps.sh). Re-runs when either file changes.
$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	bash scripts/install-system-deps.sh
	$(BIN)/pytest -q tests

demo: $(STAMP)
	$(BIN)/python -m otakit.demo

demo-real: $(STAMP)
	$(BIN)/python -m otakit.demo --real

bench: $(STAMP)
	$(BIN)/python -m bench

vectors: $(STAMP)
	$(BIN)/python scripts/make_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info .pytest_cache

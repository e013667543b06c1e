# One task runner for people and CI: `make test` is exactly what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The examples need the core install only (no extras, no test tools): a quicker first run;
# the streaming one also needs the sql extra (its sink writes to SQLite).
CORE_STAMP = $(VENV)/.installed-core
SQL_STAMP  = $(VENV)/.installed-sql

.PHONY: install example example-stream example-events test audit lint format format-check typecheck pytest replay record-histories bench bench-all chaos-soak worker studio studio-build clean

$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE_STAMP)

$(SQL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[sql]'
	touch $(SQL_STAMP) $(CORE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(CORE_STAMP) $(SQL_STAMP)

install: $(STAMP)  ## Create the virtualenv and install the project with every extra and its test tools

# The examples write only under .data/ (ignored by git); see examples/README.md.
example: $(CORE_STAMP)  ## Run the quick-start workflow end to end on the embedded Temporal server
	$(BIN)/orchestrator run examples/quickstart.json --follow

example-stream: $(SQL_STAMP)  ## Run the streaming example (JSON Lines -> filter -> transform -> SQLite)
	$(BIN)/orchestrator run examples/streaming_pipeline.json --follow

example-events: $(CORE_STAMP)  ## Run the CSV drop-zone example until cancelled (examples/README.md)
	$(BIN)/orchestrator run examples/event_driven_files.json --follow

test: lint format-check typecheck pytest  ## Everything CI checks

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

format-check: $(STAMP)
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy engine activities plugins worker.py

# Two test processes, each file in one of them (its module-scoped servers stay shared): most
# tests wait on Temporal, so two processes finish in about three quarters of the time.
pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Not part of `test`: pip-audit needs PyPI's per-release JSON API (or OSV), which the CI
# machines cannot reach (docs/SECURITY.md). --strict fails when a package could not be
# checked, so an audit that checked nothing never passes as clean.
audit: $(STAMP)  ## Known vulnerabilities in the installed dependencies (needs PyPI's JSON API)
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

replay: $(STAMP)  ## Replay the recorded histories only (no server needed)
	$(BIN)/python -m pytest tests/replay

record-histories: $(STAMP)  ## Re-record replay histories (only for NEW scenarios)
	$(BIN)/python -m tests.replay.record

bench: $(STAMP)  ## Engine vs hand-written Temporal baseline on the same server
	$(BIN)/python -m bench.bench_engine

bench-all: $(STAMP)  ## Every scenario against its hand-written baseline in one run (bench.suite; see bench/README.md)
	$(BIN)/python -m bench.suite --json bench-suite.json

MINUTES ?= 10
chaos-soak: $(STAMP)  ## Random fault-injection scenarios for MINUTES (default 10); prints figures
	$(BIN)/python -m bench.chaos_soak --minutes $(MINUTES)

worker: $(STAMP)  ## Run a worker against TEMPORAL_ADDRESS (default localhost:7233)
	$(BIN)/orchestrator worker

studio: $(STAMP)  ## Serve the studio on http://127.0.0.1:8080 (embedded server and worker)
	$(BIN)/orchestrator studio

studio-build:  ## Rebuild the studio's front end into engine/studio/static (needs npm)
	cd studio && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

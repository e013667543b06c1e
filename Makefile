# One task runner for people and CI: `make test` is exactly what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install example test lint format format-check typecheck pytest replay record-histories bench worker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## Create the virtualenv and install the project with its test tools

example: $(STAMP)  ## Run the quick-start workflow end to end on the embedded Temporal server
	$(BIN)/orchestrator run examples/quickstart.json --follow

test: lint format-check typecheck pytest  ## Everything CI checks

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

format-check: $(STAMP)
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy engine activities plugins worker.py

pytest: $(STAMP)
	$(BIN)/python -m pytest

replay: $(STAMP)  ## Replay the recorded histories only (no server needed)
	$(BIN)/python -m pytest tests/replay

record-histories: $(STAMP)  ## Re-record replay histories (only for NEW scenarios)
	$(BIN)/python -m tests.replay.record

bench: $(STAMP)  ## Engine vs hand-written Temporal baseline on the same server
	$(BIN)/python -m bench.bench_engine

worker: $(STAMP)  ## Run a worker against TEMPORAL_ADDRESS (default localhost:7233)
	$(BIN)/orchestrator worker

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

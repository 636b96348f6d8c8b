# 快速上手: make run / make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# ./config.toml once an admin has one (gridbot init writes it), else the example.
CONFIG ?= $(if $(wildcard config.toml),config.toml,config.example.toml)

.PHONY: run test test-dates setup setup-test system-deps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-deps:
	@bash scripts/system-deps.sh

setup: $(VENV)/.installed system-deps

setup-test: $(VENV)/.installed-test system-deps

run: setup
	@echo "使用配置文件 / using config: $(CONFIG)"
	$(BIN)/gridbot run --config $(CONFIG)

# The whole suite on each store: the files (TinyDB), then PostgreSQL (a throwaway server the
# tests start themselves; tests about the file store's own files are skipped there).
test: setup-test
	$(BIN)/python -m pytest -q
	GRIDBOT_TEST_STORE=postgres $(BIN)/python -m pytest -q

# The suite at a holiday, a make-up workday, New Year's Eve and a year beyond chinese-calendar.
test-dates: setup-test
	@command -v faketime >/dev/null || apt-get install -y -qq faketime >/dev/null
	@bash scripts/test-dates.sh

bench: setup-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) data

# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test lint bench clean postgres chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch lies on this disk; install it first so nothing pulls a CUDA build.
	$(BIN)/pip install -q $(TORCH)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/tunelab train examples/mnist1d_cnn.yaml --out runs/demo

test: $(VENV)/.dev-installed postgres chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q tests src/tunelab --doctest-modules

# The study tests start their own PostgreSQL server on 127.0.0.1 in a temporary directory; they
# need Debian's server binaries, installed here when missing (CI starts from a bare machine).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || \
	  echo "warning: could not install postgresql; the PostgreSQL study test will be skipped"

# The report tests open every kind of report in Debian's headless chromium (driven by Playwright,
# which never downloads a browser here); installed when missing and root, else those tests skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || ls /usr/lib/chromium/chromium >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && echo "installing chromium (apt-get install -y chromium) for the report's browser tests" && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install chromium; the report's browser tests will be skipped"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache

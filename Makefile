# Two commands on a fresh machine: `make run` (set up + start the demo gateway), `make test` (the whole suite).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint bench clean chromium

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/gateway serve --config config.yaml

# The console's browser tests drive Debian's Chromium (Playwright's own download cannot be used): install it when it
# is missing and we may (root, apt-get); in CI a missing Chromium then fails the browser tests instead of skipping.
CHROMIUM ?= /usr/bin/chromium

test: $(BIN)/.installed chromium
	$(BIN)/pytest

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the browser tests (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "no $(CHROMIUM) and cannot apt-get it: the browser tests will skip (fail if CI is set)"; \
	  fi; \
	fi

lint: $(BIN)/.installed
	$(BIN)/ruff check gateway mappings localstore tests bench
	$(BIN)/mypy gateway mappings localstore

bench: $(BIN)/.installed
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache test-output

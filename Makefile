# The README's two commands: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test install lint fixtures bench es-start es-stop clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed: set PYTHON=python3.11 (or newer)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# Debian's chromium, for the tests that look at the HTML report and the dashboard in a real
# browser (playwright drives it; no browser download). Needs root or sudo.
$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -q >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }

browser: $(CHROMIUM)

demo: $(STAMP)
	$(BIN)/auditor demo

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check auditor dashboards tests bench scripts

fixtures: $(STAMP)
	$(BIN)/python scripts/build_fixtures.py

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py
	$(BIN)/python bench/beir.py
	$(BIN)/python bench/elasticsearch.py
	$(BIN)/python bench/faithbench.py

es-start:
	scripts/elasticsearch.sh start

es-stop:
	scripts/elasticsearch.sh stop

clean:
	rm -rf .auditor .pytest_cache

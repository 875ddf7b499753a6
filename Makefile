# The README's two commands: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

# Where torch comes from. Empty (the default): PyPI, whose Linux torch is the CUDA build
# (~4.5 GB of nvidia/triton libraries; the .venv is ~6.9 GB). The auditor runs on CPU: with
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# torch comes from PyTorch's own CPU-only wheel index instead (the .venv is ~2.4 GB).
TORCH_INDEX ?=
CPU_TORCH   := https://download.pytorch.org/whl/cpu
ifeq ($(TORCH_INDEX),)
TORCH_FROM = PyPI (the CUDA build: the .venv grows to ~6.9 GB)
else
TORCH_FROM = $(TORCH_INDEX)
endif

.PHONY: demo test test-fast install lint fixtures bench es-start es-stop clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed: set PYTHON=python3.11 (or newer)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing auditor into $(VENV): torch and sentence-transformers (the MiniLM encoder),"
	@echo "DuckDB, Streamlit, the Elasticsearch client and the test tools."
	@echo "torch comes from $(TORCH_FROM)."
	@echo "The first install downloads for several minutes; pip stays silent until it is done."
	$(if $(TORCH_INDEX),,@echo "CPU-only torch (~2.4 GB): make $(or $(MAKECMDGOALS),install) TORCH_INDEX=$(CPU_TORCH) (see README)")
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
	@echo "installed: $$(du -sh $(VENV) | cut -f1) in $(VENV)"

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

# The core tier only (tests/core): no Elasticsearch, model, browser or CLI runs; under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/core

lint: $(STAMP)
	$(BIN)/ruff check auditor dashboards tests bench scripts

fixtures: $(STAMP)
	$(BIN)/python scripts/build_fixtures.py

bench: $(STAMP)
	$(BIN)/python bench/metrics_speed.py
	$(BIN)/python bench/beir.py
	$(BIN)/python bench/elasticsearch.py
	$(BIN)/python bench/faithbench.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/sampling.py
	$(BIN)/python bench/gaps.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/distributed.py

es-start:
	scripts/elasticsearch.sh start

es-stop:
	scripts/elasticsearch.sh stop

clean:
	rm -rf .auditor .pytest_cache

# avrobust: every target creates the environment first when it is missing (tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto

.PHONY: install lint test test-fast test-slow demo bench clean

install:
	@bash tools/install.sh

lint: install
	$(VENV)/bin/ruff check avrobust tests tools
	$(VENV)/bin/ruff format --check avrobust tests tools

# The whole suite CI runs: lint, then every test, slow end-to-end ones included.
test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# Quick loop while developing: skips tests marked slow.
test-fast: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow and not carla_live"

# The end-to-end demo (under 10 minutes on two CPU cores): optimise a sticker attack and a
# hiding patch on the urban stop sign, run clean and attacked drive-bys, write the report.
demo: install
	$(VENV)/bin/avrobust demo --out out/demo

bench: install
	$(PY) tools/bench.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info

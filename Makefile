# avrobust: every target creates the environment first when it is missing (tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= auto

.PHONY: install lint test test-fast test-slow demo bench clean

install:
	@bash tools/install.sh

lint: install
	$(VENV)/bin/ruff check avrobust tests tools

# The whole suite CI runs: lint, then every test, slow end-to-end ones included.
test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# Quick loop while developing: skips tests marked slow.
test-fast: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow and not carla_live"

# Until the full demo exists: the largest end-to-end paths there are. Render a scene with both
# sensors, then run (or resume) the smoke campaign and summarise it.
demo: install
	$(VENV)/bin/avrobust doctor
	$(VENV)/bin/avrobust scenario render urban_stop --out out/demo/render --time 2.5 --kitti
	$(VENV)/bin/avrobust run scenarios/campaigns/smoke.yaml --out out/demo/smoke
	$(VENV)/bin/avrobust runs show out/demo/smoke

bench: install
	$(PY) tools/bench.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info

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

# Until the full demo (issue: report and demo) exists, the largest end-to-end paths there are:
# render a scene with both sensors, run the sensor-coverage smoke campaign, run clean versus
# attacked with the shipped sticker patch and sign classifier, and print the patch at true size.
demo: install
	$(VENV)/bin/avrobust doctor
	$(VENV)/bin/avrobust scenario render urban_stop --out out/demo/render --time 2.5 --kitti
	$(VENV)/bin/avrobust run scenarios/campaigns/smoke.yaml --out out/demo/smoke
	$(VENV)/bin/avrobust run scenarios/campaigns/demo.yaml --out out/demo/stop_sticker --workers 2
	$(VENV)/bin/avrobust runs show out/demo/stop_sticker
	$(VENV)/bin/avrobust export patch assets/patches/stop_to_80.patch --out out/demo/stop_to_80.pdf

bench: install
	$(PY) tools/bench.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info

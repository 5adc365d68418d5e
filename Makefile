# README.md's commands: `make demo` (lite set-up + main job), `make test` (full set-up + every
# test: what CI runs), `make test-fast` (the same without the tests marked slow: minutes),
# `make demo-semmae` (lite set-up + the SemMAE pipeline demo), `make demo-seg` (full set-up + the
# segmentation demo). `make setup-lite` / `make setup` install the lite profile (no compiler,
# everything but segmentation) / the full one (compiled mmcv, adds segmentation; upgrades a lite
# environment in place). TORCH=2.14.1 make setup-lite takes the newer torch (lite only).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup setup-lite demo demo-semmae demo-seg test test-fast
setup:
	PROFILE=full bash tools/setup_env.sh

setup-lite:
	PROFILE=lite bash tools/setup_env.sh

demo: setup-lite
	$(PY) tools/run_demo.py

demo-semmae: setup-lite
	$(PY) tools/run_semmae_demo.py

demo-seg: setup
	$(PY) tools/run_seg_demo.py

test: setup
	bash tools/setup_browser.sh
	$(PY) -m pytest tests -ra

# The developer's first check: no demos, browser, installs or per-recipe training (pytest.ini).
test-fast: setup
	$(PY) -m pytest tests -ra -m "not slow"

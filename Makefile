# README.md's commands: `make demo` (set up + main job), `make test` (set up + tests),
# `make demo-semmae` (set up + the SemMAE pipeline demo), `make demo-seg` (set up + the
# segmentation demo).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo demo-semmae demo-seg test
setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

demo-semmae: setup
	$(PY) tools/run_semmae_demo.py

demo-seg: setup
	$(PY) tools/run_seg_demo.py

test: setup
	bash tools/setup_browser.sh
	$(PY) -m pytest tests -ra

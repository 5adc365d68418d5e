# README.md's commands: `make demo` (set up + main job), `make test` (set up + tests),
# `make demo-semmae` (set up + the SemMAE pipeline demo).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo demo-semmae test
setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

demo-semmae: setup
	$(PY) tools/run_semmae_demo.py

test: setup
	$(PY) -m pytest tests -ra

# README.md's commands, all on the default install profile, which compiles nothing
# (docs/install.md): `make demo` (set-up + main job), `make demo-photos` (the photo job: MAE on
# GroceryStore photographs), `make demo-semmae` (the SemMAE pipeline demo, learned and k-means
# parts side by side), `make demo-seg` (the segmentation demo), `make test` (set-up + every
# test: what CI runs), `make test-fast` (the same without the tests marked slow: minutes).
# `make setup` installs the profile alone. PROFILE=compiled (opt-in) takes mmcv compiled with
# its ops and upstream mmsegmentation 1.2.2 instead (`make test PROFILE=compiled`); TORCH=2.14.1
# takes the newer torch (lite only). `make setup-lite` is the old name of `make setup`.
VENV ?= .venv
PROFILE ?= lite
PY := $(VENV)/bin/python
export VENV PROFILE

.PHONY: setup setup-lite demo demo-photos demo-semmae demo-seg test test-fast
setup:
	bash tools/setup_env.sh

setup-lite: setup

demo: setup
	$(PY) tools/run_demo.py

demo-photos: setup
	$(PY) tools/run_photo_demo.py

demo-semmae: setup
	$(PY) tools/run_semmae_demo.py --parts learned kmeans

demo-seg: setup
	$(PY) tools/run_seg_demo.py

test: setup
	bash tools/setup_browser.sh
	$(PY) -m pytest tests -ra

# The developer's first check: no demos, browser, installs, tool subprocesses or per-recipe
# training (pytest.ini), one pytest worker per core (pytest-xdist).
test-fast: setup
	$(PY) -m pytest tests -ra -m "not slow" -n auto

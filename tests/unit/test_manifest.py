"""The one manifest reader and writer, and its digests (fnvision_common.manifest): versions 2 and 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fnvision_common.errors import UnknownTaskError
from fnvision_common.manifest import (
    Artifact,
    Labels,
    Manifest,
    ManifestError,
    Normalisation,
    Preprocessing,
    TensorSpec,
    file_sha256,
    tree_sha256,
)

from tests.data.manifests import manifest_doc, write_version


def test_the_built_manifest_reads_and_its_digests_match_the_files(model_dir: Path) -> None:
    m = Manifest.read(model_dir)
    assert (m.name, m.input_name, m.height, m.width, m.channels) == ("efficientnet-lite0", "images", 224, 224, 3)
    assert (m.resize_shorter, m.center_crop) == (256, 224) and m.model_id == f"{m.name}@{m.version}"
    assert m.artifacts["tflite"].sha256 == file_sha256(model_dir / m.artifacts["tflite"].path)
    assert m.artifacts["savedmodel"].sha256 == tree_sha256(model_dir / m.artifacts["savedmodel"].path)
    assert m.digest == f"sha256:{m.artifacts['tflite'].sha256}"


def test_tree_digest_sees_renames_and_moved_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"xy")
    (tmp_path / "b").write_bytes(b"z")
    first = tree_sha256(tmp_path)
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / "b").write_bytes(b"yz")  # same bytes in total, moved between files
    assert tree_sha256(tmp_path) != first
    (tmp_path / "b").rename(tmp_path / "c")
    assert tree_sha256(tmp_path) not in {first}


BROKEN = [{}, {"name": "x"}, {"name": "x", "version": "1", "digest": "d", "input": {"shape": [1, 2]}}]


@pytest.mark.parametrize("doc", BROKEN)
def test_what_is_not_a_manifest_says_so(doc: dict, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a valid model manifest"):
        Manifest.from_json(json.dumps(doc))
    with pytest.raises(ManifestError, match="cannot read"):
        Manifest.read(tmp_path / "missing.json")


# -- version 2 (docs/contracts.md §2) and version 1 ------------------------------------------------

SHA = "ab" * 32


def _v2(**changes: object) -> Manifest:
    base = Manifest(
        name="lite", version="3", digest=f"sha256:{SHA}", task="classification",
        inputs=(TensorSpec("images", (None, 260, 260, 3), "float32", "NHWC"),),
        outputs=(TensorSpec("probabilities", (None, 4), activation="softmax"),),
        preprocessing=Preprocessing("shorter", 292, 260, "bicubic", Normalisation((127.0,) * 3, (128.0,) * 3)),
        labels=Labels("labels.json", SHA, 4, "mine.txt"),
        artifacts={"tflite": Artifact("m.tflite", SHA, 10), "onnx": Artifact("m.onnx", "cd" * 32, 11, opset=17)},
        engines={"litert": {"artifact": "tflite", "num_threads": 2}, "onnxruntime": {"artifact": "onnx"}},
        created="2026-12-01T00:00:00Z", provenance={"source": {"file": "m.keras"}}, agreement={"agree": True},
    )  # fmt: skip
    return Manifest(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_a_v2_manifest_reads_back_to_what_was_written() -> None:
    m = _v2()
    back = Manifest.from_json(m.to_json())
    assert back == m and back.manifest_version == 2
    # what the v1 readers (predict, preprocess, backfill, devstack, bench) use, still answered
    assert (back.input_name, back.height, back.width, back.channels) == ("images", 260, 260, 3)
    assert (back.resize_shorter, back.center_crop, back.labels_path) == (292, 260, "labels.json")
    assert back.artifact_for("onnxruntime") == "onnx" and back.artifact_for("tensorflow") == "savedmodel"


def test_a_regression_model_has_no_labels_and_any_outputs() -> None:
    m = _v2(task="regression", labels=None, outputs=(TensorSpec("dense_1", (None, 52)), TensorSpec("aux", (None, 2))))
    back = Manifest.from_json(m.to_json())
    assert back.labels is None and back.labels_path == "" and [o.name for o in back.outputs] == ["dense_1", "aux"]


def test_a_v1_manifest_still_reads() -> None:
    m = Manifest.from_json(json.dumps(manifest_doc(name="old", version="1.0.0", size=192, resize_shorter=219)))
    assert (m.manifest_version, m.task, m.name) == (1, "classification", "old")
    assert (m.height, m.resize_shorter, m.center_crop) == (192, 219, 192)
    assert m.labels_path == "labels.json" and m.preprocessing.resample == "bicubic"


def _doc(**changes: object) -> str:
    doc = json.loads(_v2().to_json())
    doc.update(changes)
    return json.dumps(doc)


def test_an_unknown_task_says_which_tasks_exist() -> None:
    with pytest.raises(UnknownTaskError, match=r"task 'detection' is not one of \['classification'") as info:
        Manifest.from_json(_doc(task="detection"))
    assert info.value.code == "unknown_task" and isinstance(info.value, ManifestError)


LIES = [
    ({"digest": f"sha256:{'cd' * 32}"}, "digest is not sha256:<the tflite"),
    ({"manifest_version": 3}, "manifest_version 3"),
    ({"artifacts": {"tflite": {"path": "m", "sha256": "abc"}}}, "not 64 lowercase hex"),
    ({"artifacts": {"pt": {"path": "m", "sha256": SHA}}}, "not among"),
    ({"labels": {"path": "l.json", "sha256": SHA, "count": 5}}, "one output of 5 classes"),
    ({"inputs": [{"name": "x", "shape": [None, 3, 8, 8]}]}, "must be \\[N,H,W,3\\]"),
    ({"preprocessing": {"resize": "pad"}}, "resize 'pad' is not one of"),
    ({"preprocessing": {"resize": "shorter", "normalisation": {"in_model": False}}}, "in_model must be true"),
    ({"engines": {"tensorflow": {}}}, "engines.tensorflow serves an artifact the manifest does not list"),
]


@pytest.mark.parametrize(("changes", "message"), LIES)
def test_a_v2_manifest_that_does_not_hold_together_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(_doc(**changes))


def test_the_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="digest"):
        _v2(digest="sha256:" + "00" * 32).to_json()
    assert Manifest.read(write_version(tmp_path / "v", "m", "7")).version == "7"

"""The one manifest reader and its digests (fnvision_common.manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fnvision_common.manifest import Manifest, ManifestError, file_sha256, tree_sha256


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

"""The model repository (fnvision_common.repository): layout, version order, resolution, atomic publish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fnvision_common.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    ModelNotFoundError,
    ModelRefError,
    ModelVersionExistsError,
    ModelVersionNotFoundError,
)
from fnvision_common.repository import (
    LocalRepository,
    ModelRef,
    S3Repository,
    next_version,
    open_repository,
    parse_s3_uri,
    sort_versions,
)

from tests.data.manifests import write_version


def test_versions_are_ordered_as_numbers_part_by_part() -> None:
    shuffled = ["1.10", "2", "1.9", "10", "1.2.3", "9", "1.2"]
    assert sort_versions(shuffled) == ["1.2", "1.2.3", "1.9", "1.10", "2", "9", "10"]
    assert next_version([]) == "1" and next_version(["1.0.0"]) == "2" and next_version(["9", "10"]) == "11"


@pytest.mark.parametrize("bad", ["", "01", "v1", "1.", ".1", "1..2", "1-beta", "latest"])
def test_what_is_not_a_version_is_refused(bad: str) -> None:
    with pytest.raises(ModelRefError, match="dot-separated integers"):
        sort_versions(["1", bad])


def test_two_spellings_of_one_version_are_ambiguous() -> None:
    with pytest.raises(ModelRefError, match="same number"):
        sort_versions(["1", "2", "1.0"])


def test_model_refs_and_s3_uris() -> None:
    assert ModelRef.parse("lite0/1.0.0") == ModelRef("lite0", "1.0.0") and str(ModelRef.parse("lite0")) == "lite0"
    assert parse_s3_uri("s3://models") == ("models", "") and parse_s3_uri("s3://b/a/c/") == ("b", "a/c/")
    for bad in ("s3:///x", "http://b/x"):
        with pytest.raises(ModelRefError):
            parse_s3_uri(bad)
    with pytest.raises(ModelRefError, match="folder path"):
        open_repository("gs://bucket/models")
    assert isinstance(open_repository("s3://b/p/", lambda: object()), S3Repository)
    assert open_repository("file:///srv/models").root == Path("/srv/models")
    with pytest.raises(ModelRefError, match="not valid"):
        ModelRef.parse(".hidden/1")


def test_listing_sees_published_versions_only(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path)
    for v in ("1", "2", "10"):
        write_version(tmp_path / "m" / v, "m", v)
    write_version(tmp_path / "other" / "3", "other", "3")
    (tmp_path / "m" / "11").mkdir()  # no manifest yet: not a version
    (tmp_path / "m" / ".stage-x.tmp").mkdir()
    (tmp_path / "empty").mkdir()
    assert repo.models() == ["m", "other"]
    assert repo.versions("m") == ["1", "2", "10"] and repo.versions("nothing") == []
    assert repo.resolve("m") == "10" and repo.resolve("m", "2") == "2" and repo.resolve("m", "2.0") == "2"
    assert repo.manifest("other").version == "3"


def test_resolving_what_is_not_there_names_what_is(tmp_path: Path) -> None:
    write_version(tmp_path / "m" / "1", "m", "1")
    repo = LocalRepository(tmp_path)
    with pytest.raises(ModelVersionNotFoundError, match=r"has no version '7'.*versions: 1") as info:
        repo.resolve("m", "7")
    assert (info.value.status, info.value.code) == (404, "model_version_not_found")
    with pytest.raises(ModelNotFoundError, match=r"no model 'x' \(models: m\)"):
        repo.resolve("x")


def test_publish_renames_a_complete_folder_into_place_and_versions_are_immutable(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo")
    with repo.lock("m"):
        stage = write_version(repo.stage("m"), "m", "1", {"onnx": b"first"})
        target = repo.publish(stage, "m", "1")
    assert target == tmp_path / "repo" / "m" / "1" and (target / "model.onnx").read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o755
    second = write_version(tmp_path / "elsewhere", "m", "1", {"onnx": b"second"})
    with pytest.raises(ModelVersionExistsError, match="immutable"):
        repo.publish(second, "m", "1")
    assert (target / "model.onnx").read_bytes() == b"first"
    repo.publish(second, "m", "1", replace=True)  # a rebuilt bundled model replaces its version
    assert (target / "model.onnx").read_bytes() == b"second"
    assert sorted(p.name for p in (tmp_path / "repo" / "m").iterdir()) == ["1"]  # no stage or old folder left


def test_publish_refuses_a_folder_whose_files_do_not_match_its_manifest(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo")
    lying = write_version(tmp_path / "lying", "m", "1")
    (lying / "model.onnx").write_bytes(b"other")
    with pytest.raises(ArtifactCorruptError, match="sha256") as info:
        repo.publish(lying, "m", "1")
    assert info.value.code == "model_corrupt"
    missing = write_version(tmp_path / "missing", "m", "1")
    (missing / "model.onnx").unlink()
    with pytest.raises(ArtifactMissingError, match="is missing"):
        repo.publish(missing, "m", "1")
    with pytest.raises(ModelRefError, match="names m@1, not m@2"):
        repo.publish(write_version(tmp_path / "named", "m", "1"), "m", "2")
    assert repo.versions("m") == []


def test_a_version_folder_with_an_unreadable_manifest_is_reported(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "m" / "1", "m", "1")
    doc = json.loads((folder / "manifest.json").read_text())
    doc["task"] = "detection"
    (folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="task 'detection' is not one of") as info:
        LocalRepository(tmp_path).manifest("m")
    assert info.value.code == "unknown_task"  # type: ignore[attr-defined]

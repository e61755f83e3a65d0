"""Build orchestration without TensorFlow: atomic publish into the repository, interrupted builds,
up-to-date detection, and the atomic install of the default model folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fnvision_common.repository import LocalRepository

from modelbuild import build
from modelbuild.catalog import BuildInputs, BundledModel
from tests.data.manifests import write_version

NAME, VERSION = "efficientnet-lite0", "1.0.0"


def _fake_assemble(spec: BundledModel, stage: Path, inputs: BuildInputs, stages: object, log: object) -> None:
    write_version(stage, NAME, VERSION, {"tflite": b"new model"})


@pytest.fixture
def repo(tmp_path: Path) -> LocalRepository:
    """A repository holding a previous, complete build of the default model."""
    write_version(tmp_path / "repo" / NAME / VERSION, NAME, VERSION, {"tflite": b"previous build"})
    return LocalRepository(tmp_path / "repo")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}


def test_build_replaces_the_previous_model_in_one_step(repo: LocalRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "_assemble", _fake_assemble)
    lines: list[str] = []
    folder, built = build.build_model(repo, NAME, force=True, log=lines.append)
    assert built is True and folder == repo.folder(NAME, VERSION)
    assert _files(folder) == {"model.tflite": b"new model"}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert sorted(p.name for p in folder.parent.iterdir()) == [VERSION]  # no stage or old dirs left
    assert any("published" in line for line in lines)


def test_interrupted_build_keeps_the_previous_model(repo: LocalRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(spec: BundledModel, stage: Path, inputs: BuildInputs, stages: object, log: object) -> None:
        (stage / "model.tflite").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "_assemble", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build.build_model(repo, NAME, force=True, log=lambda _: None)
    folder = repo.folder(NAME, VERSION)
    assert _files(folder) == {"model.tflite": b"previous build"}
    assert sorted(p.name for p in folder.parent.iterdir()) == [VERSION]


def test_failed_check_raises_build_error_and_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(spec: BundledModel, stage: Path, inputs: BuildInputs, stages: object, log: object) -> None:
        raise build.BuildError("Keras predictions are wrong: chelsea")

    monkeypatch.setattr(build, "_assemble", wrong)
    repo = LocalRepository(tmp_path / "repo")
    with pytest.raises(build.BuildError, match="chelsea") as info:
        build.build_model(repo, NAME, log=lambda _: None)
    assert info.value.code == "model_build_failed"
    assert repo.versions(NAME) == [] and list((tmp_path / "repo" / NAME).iterdir()) == []


def test_leftovers_of_a_killed_build_are_removed(repo: LocalRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo.root / NAME / ".stage-abc123.tmp").mkdir()
    monkeypatch.setattr(build, "_assemble", _fake_assemble)
    build.build_model(repo, NAME, force=True, log=lambda _: None)
    assert sorted(p.name for p in (repo.root / NAME).iterdir()) == [VERSION]


def test_a_version_built_from_other_inputs_or_without_manifest_is_not_up_to_date(repo: LocalRepository) -> None:
    from modelbuild.catalog import bundled

    spec = bundled(NAME)
    assert build.is_up_to_date(repo, spec, spec.build_inputs()) is False  # fingerprint absent
    (repo.folder(NAME, VERSION) / "manifest.json").unlink()
    assert build.is_up_to_date(repo, spec, spec.build_inputs()) is False


def test_fingerprint_changes_with_every_input() -> None:
    base = BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "1"}, {"tensorflow": "2.21.0"})
    variants = [
        BuildInputs(Path("w.pth"), "1" * 64, {"a.py": "1"}, {"tensorflow": "2.21.0"}),
        BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "2"}, {"tensorflow": "2.21.0"}),
        BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "1"}, {"tensorflow": "2.22.0"}),
    ]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 4


def test_each_bundled_model_has_its_own_fingerprint() -> None:
    from modelbuild.catalog import BUNDLED

    installed = [m for m in BUNDLED.values() if m.weights_path().is_file()]
    assert len({m.build_inputs().fingerprint for m in installed}) == len(installed) >= 1


def test_install_folder_replaces_the_default_model_folder_in_one_step(repo: LocalRepository, tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("previous model")
    source = repo.folder(NAME, VERSION)
    assert build.install_folder(source, out) is True
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in source.iterdir())
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "repo"]  # no temp or old dirs left
    assert build.install_folder(source, out) is False  # already that version
    (out / "model.tflite").write_bytes(b"tampered")
    assert build.install_folder(source, out) is True and (out / "model.tflite").read_bytes() == b"previous build"

"""Build orchestration without TensorFlow: atomic install, interrupted builds, up-to-date detection."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from modelbuild import export
from modelbuild.manifest import BuildInputs


def _fake_assemble(tmp: Path, inputs: BuildInputs, stages: object, log: object) -> None:
    (tmp / "efficientnet_lite0.tflite").write_bytes(b"new model")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A model directory holding a previous, complete build."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "old.txt").write_text("previous build")
    return model


def test_build_replaces_the_previous_model_in_one_step(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_assemble", _fake_assemble)
    lines: list[str] = []
    assert export.build(out, force=True, log=lines.append) is True
    assert sorted(p.name for p in out.iterdir()) == ["efficientnet_lite0.tflite"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no temp or old dirs left
    assert any("installed" in line for line in lines)


def test_interrupted_build_keeps_the_previous_model(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(tmp: Path, inputs: BuildInputs, stages: object, log: object) -> None:
        (tmp / "efficientnet_lite0.tflite").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_assemble", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.build(out, force=True, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_failed_check_raises_build_error_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(tmp: Path, inputs: BuildInputs, stages: object, log: object) -> None:
        raise export.BuildError("Keras predictions are wrong: chelsea")

    monkeypatch.setattr(export, "_assemble", wrong)
    with pytest.raises(export.BuildError, match="chelsea"):
        export.build(tmp_path / "model", log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_build_are_removed(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (out.parent / ".model.abc123.tmp").mkdir()
    monkeypatch.setattr(export, "_assemble", _fake_assemble)
    export.build(out, force=True, log=lambda _: None)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]


def test_a_directory_without_manifest_is_not_up_to_date(out: Path) -> None:
    inputs = BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "1"}, {"tensorflow": "2.21.0"})
    assert export.is_up_to_date(out, inputs) is False


def test_fingerprint_changes_with_every_input() -> None:
    base = BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "1"}, {"tensorflow": "2.21.0"})
    variants = [
        BuildInputs(Path("w.pth"), "1" * 64, {"a.py": "1"}, {"tensorflow": "2.21.0"}),
        BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "2"}, {"tensorflow": "2.21.0"}),
        BuildInputs(Path("w.pth"), "0" * 64, {"a.py": "1"}, {"tensorflow": "2.22.0"}),
    ]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 4

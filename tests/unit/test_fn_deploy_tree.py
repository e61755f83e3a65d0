"""`fn deploy --app vision --all` from the repository root deploys exactly the app's two functions."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.fixture_apps import STORED_APPS, STORED_FUNC_FILE, fixture_app
from tests.fncli import FUNC_FILE_NAMES, walk_func_files

REPO = Path(__file__).resolve().parents[2]


def test_deploy_all_from_the_repo_root_walks_to_exactly_the_three_functions() -> None:
    # The real tree as a developer has it: .git, .venv, .local (fnlocal's installed deps), caches and all,
    # since the CLI walks every one of them.
    found = list(walk_func_files(REPO))
    assert found == [REPO / "functions" / name / "func.yaml" for name in ("predict", "preprocess", "results")]
    for path in found:  # each parses as the CLI requires (schema 20180708) and names its function
        data = yaml.safe_load(path.read_text())
        assert data["schema_version"] == 20180708 and data["name"] == path.parent.name


def test_stored_fixture_apps_hold_no_func_file_and_materialise_with_one() -> None:
    assert not list(walk_func_files(STORED_APPS))
    assert len(list(STORED_APPS.rglob(STORED_FUNC_FILE))) == 7
    demo = fixture_app("demo")
    assert not demo.is_relative_to(REPO)
    assert sorted(p.parent.name for p in walk_func_files(demo)) == ["echo", "exiter", "hog", "outside", "sleeper"]


def test_walker_enters_hidden_dirs_skips_symlinked_dirs_and_keeps_lexical_order(tmp_path: Path) -> None:
    for rel in ("b/func.yaml", ".hidden/x/func.yml", "a/func.json", "a/not-func.yaml", "c/func.yaml.tmpl",
                "target/func.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("schema_version: 20180708\n")
    os.symlink(tmp_path / "target", tmp_path / "linked")  # Lstat: a link to a dir is not entered
    os.symlink(tmp_path / "b" / "func.yaml", tmp_path / "a" / "func.yml")  # ...but a link named func.yml counts
    found = [p.relative_to(tmp_path).as_posix() for p in walk_func_files(tmp_path)]
    assert found == [".hidden/x/func.yml", "a/func.json", "a/func.yml", "b/func.yaml", "target/func.yaml"]
    assert FUNC_FILE_NAMES == ("func.yaml", "func.yml", "func.json")

"""fnlocal's reading of app.yaml / func.yaml: names, defaults, entrypoint, config merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fnlocal.config import ConfigError, load_app, merge_config, parse_entrypoint, stable_id
from tests.fixture_apps import fixture_app

DEMO = fixture_app("demo")


def test_demo_app_functions_and_settings() -> None:
    app = load_app(DEMO)
    assert app.name == "demo"
    assert set(app.functions) == {"echo", "exiter", "hog", "outside", "sleeper"}
    echo = app.functions["echo"]
    assert (echo.memory_mb, echo.timeout_s, echo.idle_timeout_s) == (256, 5.0, 2.0)
    assert echo.handler == "handler"
    assert app.functions["exiter"].handler == "main"
    assert echo.func_py == DEMO / "functions" / "echo" / "func.py"
    assert [t.source for t in echo.triggers] == ["/echo"]
    assert app.trigger("/echo") == (echo, echo.triggers[0])
    assert app.trigger("/nope") is None


def test_function_config_wins_over_app_and_overrides_win_over_both() -> None:
    echo = load_app(DEMO, overrides={"FN_ONLY": "override", "NEW": "1"}).functions["echo"]
    assert echo.config["APP_ONLY"] == "from-app"
    assert echo.config["SHARED"] == "from-fn"
    assert echo.config["FN_ONLY"] == "override"
    assert echo.config["NEW"] == "1"


@pytest.mark.parametrize(
    ("app", "fn", "over", "expected"),
    [
        ({"A": 1}, {"A": 2}, None, {"A": "2"}),
        ({"A": 1}, None, {"B": "x"}, {"A": "1", "B": "x"}),
        (None, {"N": None}, None, {"N": ""}),
    ],
)
def test_merge_config(app: dict | None, fn: dict | None, over: dict | None, expected: dict) -> None:
    assert merge_config(app, fn, over) == expected


@pytest.mark.parametrize(
    ("entrypoint", "handler"),
    [
        ("/python/bin/fdk /function/func.py handler", "handler"),
        ("/python/bin/fdk /function/func.py main", "main"),
        ("/python/bin/fdk /function/func.py", "handler"),
        (None, "handler"),
    ],
)
def test_parse_entrypoint(entrypoint: str | None, handler: str) -> None:
    assert parse_entrypoint(entrypoint) == handler


def test_parse_entrypoint_rejects_non_fdk() -> None:
    with pytest.raises(ConfigError):
        parse_entrypoint("node server.js")


def test_stable_id_is_stable_ulid_shaped_and_distinct() -> None:
    assert stable_id("vision", "predict") == stable_id("vision", "predict")
    assert stable_id("vision", "predict") != stable_id("vision", "preprocess")
    assert len(stable_id("a", "b")) == 26 and stable_id("a", "b").isalnum()


def _app(tmp_path: Path, func_yaml: str) -> Path:
    (tmp_path / "app.yaml").write_text("name: t\n")
    fn_dir = tmp_path / "functions" / "f"
    fn_dir.mkdir(parents=True)
    (fn_dir / "func.yaml").write_text(func_yaml)
    (fn_dir / "func.py").write_text("def handler(ctx, data=None):\n    return 'x'\n")
    return tmp_path


def test_defaults_and_name_from_folder(tmp_path: Path) -> None:
    fn = load_app(_app(tmp_path, "schema_version: 20180708\n")).functions["f"]
    assert (fn.memory_mb, fn.timeout_s, fn.idle_timeout_s, fn.handler) == (128, 30.0, 30.0, "handler")


def test_trigger_source_gets_leading_slash(tmp_path: Path) -> None:
    yaml_text = "schema_version: 20180708\nname: f\ntriggers:\n  - {name: f, type: http, source: hook}\n"
    fn = load_app(_app(tmp_path, yaml_text)).functions["f"]
    assert fn.triggers[0].source == "/hook"


@pytest.mark.parametrize(
    "func_yaml",
    ["schema_version: 1\n", "timeout: -1\n", "memory: lots\n", "triggers:\n  - {name: x}\n", "- a list\n"],
)
def test_bad_func_yaml_is_a_config_error(tmp_path: Path, func_yaml: str) -> None:
    with pytest.raises(ConfigError):
        load_app(_app(tmp_path, func_yaml))


def test_missing_app_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no app.yaml"):
        load_app(tmp_path)


def test_fnlocal_yaml_defaults_fill_only_unset_keys(tmp_path: Path) -> None:
    app = _app(tmp_path, "schema_version: 20180708\nconfig:\n  FROM_FN: fn\n")
    (app / "app.yaml").write_text("name: t\nconfig:\n  FROM_APP: app\n")
    (app / "fnlocal.yaml").write_text("defaults:\n  f:\n    FROM_FN: default\n    FROM_APP: default\n"
                                      "    ONLY_DEFAULT: ${FNLOCAL_URL}/t/t/x\n    OVERRIDDEN: default\n")
    fn = load_app(app, overrides={"OVERRIDDEN": "override"}).functions["f"]
    assert fn.config == {"FROM_FN": "fn", "FROM_APP": "app", "ONLY_DEFAULT": "${FNLOCAL_URL}/t/t/x",
                         "OVERRIDDEN": "override"}


@pytest.mark.parametrize("text", ["defaults:\n  nope:\n    A: b\n", "other: 1\n", "defaults:\n  f: [1]\n"])
def test_fnlocal_yaml_mistakes_are_config_errors(tmp_path: Path, text: str) -> None:
    app = _app(tmp_path, "schema_version: 20180708\n")
    (app / "fnlocal.yaml").write_text(text)
    with pytest.raises(ConfigError, match="fnlocal.yaml"):
        load_app(app)


def test_repo_app_defaults_preprocess_to_fnlocals_own_predict_trigger() -> None:
    repo = Path(__file__).resolve().parents[2]
    app = load_app(repo)
    assert app.functions["preprocess"].config["PREDICT_URL"] == "${FNLOCAL_URL}/t/vision/predict"
    assert "PREDICT_URL" not in app.functions["predict"].config
    func_yaml = yaml.safe_load((repo / "functions" / "preprocess" / "func.yaml").read_text())
    assert "PREDICT_URL" not in func_yaml["config"]  # deployed config never points at fnlocal

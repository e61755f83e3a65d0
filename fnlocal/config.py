"""Read an Fn app folder (`app.yaml` + `functions/*/func.yaml`) the way `fn deploy --all` would.

Plus `fnlocal.yaml` beside app.yaml, which only fnlocal reads (the fn CLI deploys app.yaml and func
files, nothing else): per-function config defaults for running the app locally, used only where
app.yaml, func.yaml and the caller's overrides leave a key unset. A value there may name fnlocal's
own URL as `${FNLOCAL_URL}`, so an app can point one function at another without touching func.yaml:

    defaults:
      preprocess:
        PREDICT_URL: ${FNLOCAL_URL}/t/vision/predict
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 30
DEFAULT_IDLE_TIMEOUT_S = 30
DEFAULT_ENTRYPOINT = "/python/bin/fdk /function/func.py handler"
FUNC_FILES = ("func.yaml", "func.yml")
APP_FILES = ("app.yaml", "app.yml")
LOCAL_FILES = ("fnlocal.yaml", "fnlocal.yml")
#: func.yaml annotation that overrides the per-function container limit (fnlocal only).
MAX_CONTAINERS_ANNOTATION = "fnlocal/max_containers"


class ConfigError(Exception):
    """An app.yaml or func.yaml that fnlocal cannot use."""


@dataclass(frozen=True)
class Trigger:
    """An HTTP trigger; `source` always starts with `/` (as `fn create trigger` stores it)."""

    name: str
    source: str
    type: str = "http"


@dataclass(frozen=True)
class Function:
    """One deployed function: everything the runtime needs to start its containers."""

    app: str
    name: str
    fn_id: str
    directory: Path
    handler: str
    memory_mb: int
    timeout_s: float
    idle_timeout_s: float
    config: Mapping[str, str]
    triggers: tuple[Trigger, ...] = ()
    annotations: Mapping[str, Any] = field(default_factory=dict)

    @property
    def func_py(self) -> Path:
        """The module the fdk loads (`/function/func.py` in the image)."""
        return self.directory / "func.py"


@dataclass(frozen=True)
class App:
    """An app and its functions, keyed by function name."""

    name: str
    app_id: str
    config: Mapping[str, str]
    functions: Mapping[str, Function]

    def trigger(self, source: str) -> tuple[Function, Trigger] | None:
        """Find the function whose HTTP trigger has this source (`/x`)."""
        for fn in self.functions.values():
            for trig in fn.triggers:
                if trig.source == source:
                    return fn, trig
        return None


def stable_id(*parts: str) -> str:
    """Derive a 26-character, ULID-shaped id that stays the same for the same names."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:26].upper()


def parse_entrypoint(entrypoint: str | None) -> str:
    """Return the handler name from `/python/bin/fdk /function/func.py handler` (default `handler`)."""
    words = (entrypoint or DEFAULT_ENTRYPOINT).split()
    if len(words) >= 2 and words[0].endswith("fdk") and words[1].endswith(".py"):
        return words[2] if len(words) >= 3 else "handler"
    raise ConfigError(f"unsupported entrypoint {entrypoint!r}: expected '<...>/fdk <...>/func.py [handler]'")


def merge_config(app_config: Mapping[str, Any] | None, fn_config: Mapping[str, Any] | None,
                 overrides: Mapping[str, str] | None = None, *,
                 defaults: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Merge fnlocal.yaml defaults (lowest), app config, function config (wins over app) and caller
    overrides (win over all)."""
    merged: dict[str, str] = {}
    for source in (defaults or {}, app_config or {}, fn_config or {}, overrides or {}):
        for key, value in source.items():
            merged[str(key)] = "" if value is None else str(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _find(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def _number(data: Mapping[str, Any], key: str, default: float, path: Path) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}: {key} must be a positive number, got {value!r}")
    return float(value)


def _triggers(data: Mapping[str, Any], path: Path) -> tuple[Trigger, ...]:
    out = []
    for item in data.get("triggers") or []:
        if not isinstance(item, dict) or "source" not in item:
            raise ConfigError(f"{path}: each trigger needs at least a source")
        source = "/" + str(item["source"]).lstrip("/")
        kind = str(item.get("type", "http"))
        out.append(Trigger(name=str(item.get("name", source)), source=source, type=kind))
    return tuple(out)


def load_function(app: str, app_config: Mapping[str, Any], path: Path,
                  overrides: Mapping[str, str] | None = None, *,
                  local_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> Function:
    """Build a Function from one func.yaml (`local_defaults`: fnlocal.yaml's, by function name)."""
    data = _read_yaml(path)
    if data.get("schema_version", 20180708) != 20180708:
        raise ConfigError(f"{path}: unsupported func.yaml version, please use the migrate command")
    directory = path.parent.resolve()
    name = str(data.get("name") or directory.name)
    if not (directory / "func.py").is_file():
        raise ConfigError(f"{path}: no func.py beside it")
    return Function(
        app=app,
        name=name,
        fn_id=stable_id(app, name),
        directory=directory,
        handler=parse_entrypoint(data.get("entrypoint")),
        memory_mb=int(_number(data, "memory", DEFAULT_MEMORY_MB, path)),
        timeout_s=_number(data, "timeout", DEFAULT_TIMEOUT_S, path),
        idle_timeout_s=_number(data, "idle_timeout", DEFAULT_IDLE_TIMEOUT_S, path),
        config=merge_config(app_config, data.get("config"), overrides,
                            defaults=(local_defaults or {}).get(name)),
        triggers=_triggers(data, path),
        annotations=dict(data.get("annotations") or {}),
    )


def load_local_defaults(root: Path) -> dict[str, dict[str, Any]]:
    """fnlocal.yaml's `defaults` (function name -> config), or {} without that file."""
    path = _find(root, LOCAL_FILES)
    if path is None:
        return {}
    data = _read_yaml(path)
    unknown = set(data) - {"defaults"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; expected 'defaults'")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ConfigError(f"{path}: 'defaults' must map function names to config mappings")
    return {str(name): dict(config) for name, config in defaults.items()}


def load_app(app_dir: str | Path, overrides: Mapping[str, str] | None = None) -> App:
    """Read `app.yaml`, fnlocal.yaml and every `functions/*/func.yaml` (or `*/func.yaml`) under app_dir."""
    root = Path(app_dir).resolve()
    app_file = _find(root, APP_FILES)
    if app_file is None:
        raise ConfigError(f"{root}: no app.yaml")
    data = _read_yaml(app_file)
    name = str(data.get("name") or root.name)
    app_config = data.get("config") or {}
    local_defaults = load_local_defaults(root)
    base = root / "functions" if (root / "functions").is_dir() else root
    functions: dict[str, Function] = {}
    for sub in sorted(p for p in base.iterdir() if p.is_dir()):
        func_file = _find(sub, FUNC_FILES)
        if func_file is None:
            continue
        fn = load_function(name, app_config, func_file, overrides, local_defaults=local_defaults)
        if fn.name in functions:
            raise ConfigError(f"{func_file}: duplicate function name {fn.name!r}")
        functions[fn.name] = fn
    unknown = sorted(set(local_defaults) - set(functions))
    if unknown:  # a typo there would silently leave the default unapplied
        raise ConfigError(f"{root}: fnlocal.yaml has defaults for {unknown}, which app {name!r} does not have")
    return App(name=name, app_id=stable_id(name), config=merge_config(app_config, None), functions=functions)

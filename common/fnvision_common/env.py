"""Settings read from the environment (Fn config arrives as environment variables): one set of rules.

Each function reads its settings once per container into a frozen dataclass; the values are parsed
here, so a number, a boolean, a log level or the results location means the same in both functions.
A bad value raises ``SettingError`` naming the key; each function maps it to its ``config_error``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_RESULTS_BUCKET = "results"


class SettingError(ValueError):
    """A setting in the environment has a value we cannot use (the message names the key)."""


def parse_bool(name: str, value: str) -> bool:
    """Parse a boolean setting strictly; anything unknown is an error naming the key."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name}={value!r} is not a boolean (use true/false)")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean setting; unset or blank is ``default``."""
    raw = env.get(name, "")
    return default if not raw.strip() else parse_bool(name, raw)


def env_int(env: Mapping[str, str], name: str, default: int, low: int = 1, high: int | None = None) -> int:
    """An integer setting within ``low``..``high``; unset or blank is ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r} is not an integer") from exc
    if high is not None and not low <= value <= high:
        raise SettingError(f"{name}={value} must be between {low} and {high}")
    if value < low:
        raise SettingError(f"{name}={value} must be >= {low}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, low: float | None = None) -> float:
    """A finite number: positive, or at least ``low`` when given; unset or blank is ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise SettingError(f"{name}={raw!r} is not a finite number")
    if low is None and value <= 0:
        raise SettingError(f"{name}={raw!r} must be positive")
    if low is not None and value < low:
        raise SettingError(f"{name}={raw!r} must be at least {low}")
    return value


def log_level(env: Mapping[str, str], name: str = "LOG_LEVEL") -> str:
    """LOG_LEVEL: one of LOG_LEVELS, any case; WARN means WARNING (as the logging module allows)."""
    raw = env.get(name, "").strip()
    if not raw:
        return "INFO"
    level = raw.upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise SettingError(f"{name}={raw!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def results_location(env: Mapping[str, str]) -> tuple[str, str]:
    """RESULTS_BUCKET (default ``results``) and RESULTS_PREFIX (default empty): where records go."""
    bucket = env.get("RESULTS_BUCKET", "").strip() or DEFAULT_RESULTS_BUCKET
    return bucket, env.get("RESULTS_PREFIX", "").strip()


def results_index(env: Mapping[str, str]) -> bool:
    """RESULTS_INDEX (default true): write the result index with each record (fnvision_common.result_index)."""
    return env_bool(env, "RESULTS_INDEX", True)

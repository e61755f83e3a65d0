"""Configuration of the results function, read once from the environment (Fn config = env vars).

Every key is listed in ``functions/results/README.md``; S3_* keys are parsed by ``s3client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fnvision_common.access import AUTH_TOKEN
from fnvision_common.env import SettingError, env_int, log_level, results_location
from fnvision_common.s3client import S3Settings

from .errors import ConfigError

MAX_LIMIT = 200
"""Most items one list or gallery page holds (each is a GET of its document)."""


@dataclass(frozen=True)
class Settings:
    """Where the results are and how they are served."""

    results_bucket: str = "results"
    results_prefix: str = ""
    auth_token: str = ""
    """AUTH_TOKEN: when set, HTTP-trigger calls need `Authorization: Bearer <token>` (or the gallery's cookie)."""
    presign_seconds: int = 300
    """PRESIGN_SECONDS: how long a thumbnail's presigned URL works."""
    list_limit: int = 50
    """LIST_LIMIT: items per list page when the query does not say."""
    gallery_limit: int = 24
    """GALLERY_LIMIT: cards per gallery page when the query does not say."""
    readers: int = 8
    """READERS: documents fetched in parallel for one page."""
    log_level: str = "INFO"
    s3: S3Settings = field(default_factory=S3Settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse the settings; raise ConfigError naming the key on any bad value."""
        try:
            bucket, prefix = results_location(env)
            return cls(
                results_bucket=bucket,
                results_prefix=prefix,
                auth_token=env.get(AUTH_TOKEN, "").strip(),
                presign_seconds=env_int(env, "PRESIGN_SECONDS", 300, 1, 7 * 24 * 3600),
                list_limit=env_int(env, "LIST_LIMIT", 50, 1, MAX_LIMIT),
                gallery_limit=env_int(env, "GALLERY_LIMIT", 24, 1, MAX_LIMIT),
                readers=env_int(env, "READERS", 8, 1, 32),
                log_level=log_level(env),
                s3=S3Settings.from_env(env),
            )
        except SettingError as exc:
            raise ConfigError(str(exc)) from exc

"""S3-compatible object storage client, configured once from the environment.

Part of ``fnvision-common`` (``common/``), the package both functions install (common/README.md).

Works against AWS S3, OCI Object Storage's S3 Compatibility API, MinIO and SeaweedFS. Non-AWS
stores need path-style addressing and boto3's checksum mode ``when_required`` (boto3 >= 1.36 sends
aws-chunked CRC32 trailers by default, which OCI rejects).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fnvision_common.env import SettingError, parse_bool


class StorageConfigError(SettingError):
    """A storage setting in the environment has a value we cannot use."""


def _positive(name: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        parsed = kind(value)
    except ValueError as exc:
        raise StorageConfigError(f"{name}={value!r} is not a number") from exc
    if parsed <= 0:
        raise StorageConfigError(f"{name}={value!r} must be positive")
    return parsed


@dataclass(frozen=True)
class S3Settings:
    """How to reach the object store."""

    endpoint_url: str | None = None
    """Endpoint of a non-AWS store; None means AWS S3."""
    region: str = "us-east-1"
    addressing_style: str = "path"
    """`path` works everywhere; OCI's virtual-hosted style only for buckets made via the S3 API."""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    ca_bundle: str | None = None
    verify_tls: bool = True
    checksum_mode: str = "when_required"
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3

    @property
    def configured(self) -> bool:
        """True when the config names a store or credentials: the functions then build their client at
        cold start. Without either, boto3 would look for credentials itself (files, instance metadata),
        so the client is built on first use only (a function that never touches storage never pays)."""
        return self.endpoint_url is not None or self.access_key_id is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        """Read the S3_* keys (see docs/contracts.md §7)."""
        style = env.get("S3_ADDRESSING_STYLE", "path")
        if style not in {"path", "virtual", "auto"}:
            raise StorageConfigError(f"S3_ADDRESSING_STYLE={style!r}: use path, virtual or auto")
        checksum = env.get("S3_CHECKSUM_MODE", "when_required")
        if checksum not in {"when_required", "when_supported"}:
            raise StorageConfigError(f"S3_CHECKSUM_MODE={checksum!r}: use when_required or when_supported")
        return cls(
            endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            region=env.get("S3_REGION", "us-east-1"),
            addressing_style=style,
            access_key_id=env.get("S3_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("S3_SECRET_ACCESS_KEY") or None,
            session_token=env.get("S3_SESSION_TOKEN") or None,
            ca_bundle=env.get("S3_CA_BUNDLE") or None,
            verify_tls=parse_bool("S3_VERIFY_TLS", env.get("S3_VERIFY_TLS", "true")),
            checksum_mode=checksum,
            connect_timeout=_positive("S3_CONNECT_TIMEOUT", env.get("S3_CONNECT_TIMEOUT", "3"), float),
            read_timeout=_positive("S3_READ_TIMEOUT", env.get("S3_READ_TIMEOUT", "10"), float),
            max_attempts=_positive("S3_MAX_ATTEMPTS", env.get("S3_MAX_ATTEMPTS", "3"), int),
        )


def make_client(settings: S3Settings) -> Any:
    """Build a boto3 S3 client (boto3 is imported here so importing this module stays cheap)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing_style},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        request_checksum_calculation=settings.checksum_mode,
        response_checksum_validation=settings.checksum_mode,
    )
    verify: bool | str = settings.ca_bundle or settings.verify_tls
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        verify=verify,
        config=config,
    )


def build_client(
    settings: S3Settings, factory: Callable[[S3Settings], Any] | None = None
) -> tuple[Any, dict[str, float]]:
    """Build a client (``make_client`` unless ``factory``) and say what it cost, in ms: boto3's import
    when this is the first one (``boto3_import_ms``) and the client's creation (``client_ms``)."""
    cost: dict[str, float] = {}
    start = time.perf_counter()
    if factory is None:
        factory = make_client
        if "boto3" not in sys.modules:
            import boto3  # noqa: F401  # timed apart: most of a first client's cost

            cost["boto3_import_ms"] = round((time.perf_counter() - start) * 1000, 1)
    created = time.perf_counter()
    client = factory(settings)
    cost["client_ms"] = round((time.perf_counter() - created) * 1000, 1)
    return client, cost


def error_code(exc: BaseException) -> str:
    """Return the S3 error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    """True for NoSuchKey / NoSuchBucket / 404 answers."""
    return error_code(exc) in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


def is_precondition_failed(exc: BaseException) -> bool:
    """True when a conditional request (If-None-Match / If-Match) was refused."""
    return error_code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def normalise_etag(etag: str | None) -> str:
    """Strip the quotes S3 puts around ETags (and a weak-validator prefix)."""
    if not etag:
        return ""
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


_RETRYABLE_CLIENT_STATUSES = {401, 403, 404, 408, 409, 429}
"""4xx answers that a later attempt can get past: credentials or a bucket being fixed, timeouts,
conflicting concurrent conditional writes, throttling."""
_THROTTLING_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}


def http_status(exc: BaseException) -> int | None:
    """HTTP status of a botocore ClientError (None for connection errors and everything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def is_refused_request(exc: BaseException) -> bool:
    """True when the store refused the request itself (a 4xx no retry can change, e.g. KeyTooLongError).

    Such a failure is permanent for that object: retrying the event would loop for ever. Auth,
    missing buckets, timeouts, conflicts and throttling are not refusals (see _RETRYABLE_CLIENT_STATUSES).
    """
    status = http_status(exc)
    if status is None or not 400 <= status < 500:
        return False
    return status not in _RETRYABLE_CLIENT_STATUSES and error_code(exc) not in _THROTTLING_CODES

"""Envelopes around storage events — SNS, SQS, CloudEvents 1.0 (structured and binary) — and the JSON
parser every door shares (``loads_json``).

Each unwrapper recognises one envelope and returns what is inside, or ``None`` when the payload is
not that envelope; the recognisers in ``events`` hand what is inside back to the dispatcher. Nothing
here decodes keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadEventError

SNS_TYPES = {"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"}


@dataclass(frozen=True)
class CloudEvent:
    """A CloudEvents 1.0 event, whichever way it arrived."""

    type: str
    id: str | None
    time: str | None
    source: str | None
    subject: str | None
    datacontenttype: str | None
    data: Any
    """Parsed JSON (dict/list), raw bytes (non-JSON binary data) or None."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""Only JSON text with a surrogate escape can hold a lone surrogate: the full check runs only then."""


def loads_json(text: str | bytes, what: str) -> Any:
    """Parse JSON or raise BadEventError naming what was being parsed.

    JSON may escape a lone UTF-16 surrogate (``"photo\\ud800.jpg"``); Python keeps it in the string,
    and it only fails later, when boto3 or a key encodes it as UTF-8 — as a storage error that
    invites retries. Such text names nothing, so it is refused here as bad input.
    """
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, too many digits, bad UTF-8
        raise BadEventError(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadEventError(f"{what} is nested too deeply") from exc
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadEventError(
                f"{what} holds a string that is not valid Unicode (a lone UTF-16 surrogate escape such as "
                f"\\ud800): {exc.reason}"
            ) from exc
    return value


def sns_message(payload: Mapping[str, Any]) -> tuple[str, Any] | None:
    """Unwrap an SNS HTTP(S) delivery: returns (sns type, parsed Message or None)."""
    kind = payload.get("Type")
    if not isinstance(kind, str) or kind not in SNS_TYPES or "Message" not in payload:
        return None
    if kind != "Notification":
        return str(kind), None
    message = payload["Message"]
    if isinstance(message, str):
        return str(kind), loads_json(message, "SNS Message")
    return str(kind), message


def sqs_lambda_bodies(payload: Mapping[str, Any]) -> list[Any] | None:
    """Unwrap SQS messages delivered Lambda-style: ``Records[].body``."""
    records = payload.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(
            isinstance(r, dict) and (r.get("eventSource") == "aws:sqs" or ("body" in r and "receiptHandle" in r))
            for r in records
        )
    ):
        return [_maybe_json(r.get("body"), "SQS body") for r in records]
    return None


def sqs_received_bodies(payload: Mapping[str, Any]) -> list[Any] | None:
    """Unwrap an SQS ReceiveMessage answer forwarded whole: ``Messages[].Body``."""
    messages = payload.get("Messages")
    if isinstance(messages, list) and all(isinstance(m, dict) and "Body" in m for m in messages):
        return [_maybe_json(m.get("Body"), "SQS Body") for m in messages]
    return None


def lambda_sns_messages(payload: Mapping[str, Any]) -> list[Any] | None:
    """Unwrap SNS-to-Lambda style records: `Records[].Sns.Message`."""
    records = payload.get("Records")
    if isinstance(records, list) and records and all(isinstance(r, dict) and "Sns" in r for r in records):
        if not all(isinstance(r["Sns"], dict) for r in records):
            raise BadEventError("SNS record whose `Sns` is not an object")
        return [_maybe_json(r["Sns"].get("Message"), "SNS Message") for r in records]
    return None


def _maybe_json(value: Any, what: str) -> Any:
    return loads_json(value, what) if isinstance(value, (str, bytes)) else value


def structured_cloudevent(payload: Mapping[str, Any]) -> CloudEvent | None:
    """A CloudEvents 1.0 structured-mode event (`specversion` + `type`)."""
    if "specversion" not in payload or "type" not in payload:
        return None
    data: Any = payload.get("data")
    if data is None and "data_base64" in payload:
        try:
            raw = base64.b64decode(str(payload["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadEventError(f"CloudEvent data_base64 is not base64: {exc}") from exc
        data = _data_from_bytes(raw, _opt(payload.get("datacontenttype")))
    elif isinstance(data, str) and _is_json_type(_opt(payload.get("datacontenttype"))):
        data = loads_json(data, "CloudEvent data")
    if not isinstance(payload["type"], str) or not payload["type"]:
        raise BadEventError("CloudEvent `type` must be a non-empty string")
    return CloudEvent(
        type=payload["type"],
        id=_opt(payload.get("id")),
        time=_opt(payload.get("time")),
        source=_opt(payload.get("source")),
        subject=_opt(payload.get("subject")),
        datacontenttype=_opt(payload.get("datacontenttype")),
        data=data,
    )


def binary_cloudevent(headers: Mapping[str, str], body: bytes) -> CloudEvent | None:
    """A CloudEvents 1.0 binary-mode event: attributes in `ce-*` headers, data in the body."""
    if "ce-specversion" not in headers:
        return None
    ce_type = headers.get("ce-type")
    if not ce_type:
        raise BadEventError("binary CloudEvent without ce-type header")
    content_type = headers.get("content-type")
    return CloudEvent(
        type=ce_type,
        id=headers.get("ce-id"),
        time=headers.get("ce-time"),
        source=headers.get("ce-source"),
        subject=headers.get("ce-subject"),
        datacontenttype=content_type,
        data=_data_from_bytes(body, content_type) if body else None,
    )


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    base = content_type.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json") or base == "text/json"


def _data_from_bytes(raw: bytes, content_type: str | None) -> Any:
    base = (content_type or "").split(";")[0].strip().lower()
    if base.startswith("image/") or base == "application/octet-stream":
        return raw
    if _is_json_type(content_type) or base == "text/plain":
        return loads_json(raw, "CloudEvent data")
    return raw


def _opt(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise BadEventError(f"CloudEvent attribute of type {type(value).__name__} where a string is expected")

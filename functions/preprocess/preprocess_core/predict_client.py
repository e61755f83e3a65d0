"""The call to predict: Open Inference Protocol v2 with the binary tensor extension.

Request (docs/contracts.md §3): header ``Inference-Header-Content-Length: <n>``; the first n bytes
are the JSON inference header, then the raw ``uint8`` tensor ``[N, S, S, 3]`` (``binary_data_size``
bytes). ``parameters.sources`` is a JSON **string** (OIP parameters must be scalars) with one entry
per image: ``{"bucket","key","etag","metadata"}`` for stored objects (predict records the result),
``{"metadata"}`` otherwise.

A batch whose body would exceed ``max_request_bytes`` (default 5 MB, OCI's invoke cap is 6 MB) is
split into several calls. The POST is ``fnvision_common.http.RetryingPost`` (one pooled keep-alive
connection to predict per hot container): connection errors and 408/429/502/503/504 (also as
``Fn-Http-Status``) are retried ``attempts`` times in all with exponential backoff from ``backoff``
(a ``Retry-After`` wins, up to ``max_retry_after``), then ``predict_unavailable``; a timeout is
``predict_timeout`` at once; other 5xx, and answers that are not predict's, are ``predict_failed``
(502: the event is delivered again).
A client error from predict (4xx, or an error body on a 200 — predict sends its 4xx that way on
``/invoke``: ``invalid_shape``, ``invalid_value``, ...) is permanent: the images of that request are
reported in ``PredictAnswer.rejected`` (``predict_rejected``, 422) and never retried. Our Fn call
id travels in ``Fn-Call-Id`` (replaced by the Fn agent on the way in) and ``X-Parent-Call-Id`` (kept).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common import oip
from fnvision_common.http import PostFailed, PostTimeout, RetryingPost

from .errors import PredictError, PredictRejectedError, PredictTimeoutError, PredictUnavailableError

log = logging.getLogger(__name__)
_RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
_SERVER_CODES = {"config_error", "model_corrupt", "model_unavailable", "storage_unavailable", "internal_error"}
"""predict's server-side error codes (docs/contracts.md §6): retryable even if they come with a 200."""


@dataclass(frozen=True)
class PredictAnswer:
    """Predictions in input order plus the model that made them.

    ``rejected`` maps the index of every image whose request predict refused (a client error) to
    that error; their entries in ``predictions`` are empty.
    """

    predictions: list[dict[str, Any]]
    model: dict[str, Any] = field(default_factory=dict)
    calls: int = 1
    request_bytes: int = 0
    rejected: dict[int, PredictRejectedError] = field(default_factory=dict)


def encode_request(
    batch: npt.NDArray[np.uint8], sources: Sequence[dict[str, Any] | None], *, input_name: str, top_k: int
) -> tuple[bytes, int]:
    """Build one OIP v2 binary request body; returns (body, JSON header length)."""
    return oip.encode_request(batch, sources, input_name=input_name, top_k=top_k)


def split_batches(count: int, image_bytes: int, source_sizes: Sequence[int], max_request_bytes: int) -> list[range]:
    """Group image indexes so that each request body stays under ``max_request_bytes``."""
    groups: list[range] = []
    start = 0
    size = 512  # JSON header skeleton
    for i in range(count):
        cost = image_bytes + source_sizes[i] + 2
        if i > start and size + cost > max_request_bytes:
            groups.append(range(start, i))
            start, size = i, 512
        size += cost
    if count:
        groups.append(range(start, count))
    return groups


def parse_answer(body: bytes, header_length: str | None) -> dict[str, Any]:
    """The native answer (§4) from an OIP v2 (`parameters.fnvision`) or native response."""
    try:
        answer = oip.read_json(body, header_length)
    except oip.LayoutError as exc:
        raise PredictError(f"predict's answer does not follow the OIP binary layout: {exc}") from exc
    except ValueError as exc:
        raise PredictError(f"predict answered something that is not JSON: {body[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise PredictError("predict answered JSON that is not an object")
    if "error" in answer:
        err = answer["error"] if isinstance(answer["error"], dict) else {"message": str(answer["error"])}
        text = f"{err.get('code', '?')}: {err.get('message', '')}"
        if err.get("code") in _SERVER_CODES:
            raise PredictError(f"predict failed: {text}")
        raise PredictRejectedError(f"predict refused the request: {text}")
    params = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
    native = params.get(oip.NATIVE_PARAMETER) if params else None
    if isinstance(native, str):
        try:
            native = json.loads(native)
        except ValueError as exc:
            raise PredictError("predict's parameters.fnvision is not JSON") from exc
    if isinstance(native, dict) and isinstance(native.get("predictions"), list):
        return native
    if isinstance(answer.get("predictions"), list):
        return answer
    raise PredictError("predict's answer has no predictions")


class PredictClient:
    """Sends batches to predict (``Predictor`` for the service)."""

    def __init__(
        self,
        url: str,
        *,
        input_name: str = "images",
        top_k: int = 5,
        timeout: float = 60.0,
        attempts: int = 4,
        backoff: float = 0.25,
        max_request_bytes: int = 5_000_000,
        max_retry_after: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.input_name = input_name
        self.top_k = top_k
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_request_bytes = max_request_bytes
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._post: RetryingPost | None = None

    def predict(
        self, batch: npt.NDArray[np.uint8], sources: Sequence[dict[str, Any] | None], call_id: str | None
    ) -> PredictAnswer:
        """Classify ``batch`` in as few calls as the size cap allows; predictions in input order."""
        if not self.url:
            raise PredictUnavailableError("PREDICT_URL is not configured")
        per_image = int(np.prod(batch.shape[1:]))
        sizes = [len(json.dumps(s, default=str)) for s in sources]
        predictions: list[dict[str, Any]] = []
        rejected: dict[int, PredictRejectedError] = {}
        model: dict[str, Any] = {}
        total_bytes = 0
        groups = split_batches(len(sources), per_image, sizes, self.max_request_bytes)
        for group in groups:
            body, head_len = encode_request(
                batch[group.start : group.stop],
                list(sources[group.start : group.stop]),
                input_name=self.input_name,
                top_k=self.top_k,
            )
            total_bytes += len(body)
            try:
                answer = self._call(body, head_len, call_id)
            except PredictRejectedError as exc:
                log.warning("predict rejected a request", extra={"images": len(group), "why": exc.message})
                rejected.update((i, exc) for i in group)
                predictions.extend({} for _ in group)
                continue
            got = answer["predictions"]
            if len(got) != len(group):
                raise PredictError(f"predict returned {len(got)} predictions for {len(group)} images")
            predictions.extend(got)
            model = answer.get("model") or model
        return PredictAnswer(
            predictions=predictions, model=model, calls=len(groups), request_bytes=total_bytes, rejected=rejected
        )

    def _call(self, body: bytes, head_len: int, call_id: str | None) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(head_len),
            "Accept": "application/json",
        }
        if call_id:
            headers["Fn-Call-Id"] = call_id
            headers["X-Parent-Call-Id"] = call_id
        try:
            reply = self._poster().post(body, headers)
        except PostTimeout as exc:
            raise PredictTimeoutError(f"predict did not answer within {self.timeout}s") from exc
        except PostFailed as exc:
            if exc.reply is not None:
                last = f"HTTP {exc.reply.real_status}: {exc.reply.body[:200]!r}"
            else:
                last = f"connection failed: {exc.error}"
            raise PredictUnavailableError(f"predict unavailable after {exc.attempts} attempts ({last})") from exc
        real = reply.real_status
        if real >= 500:
            raise PredictError(f"predict failed: HTTP {real}: {reply.body[:300]!r}")
        if real >= 400:
            # A trigger passes predict's error status and JSON body through: a client error.
            raise PredictRejectedError(f"predict refused the request: HTTP {real}: {reply.body[:300]!r}")
        return parse_answer(reply.body, reply.headers.get("inference-header-content-length"))

    def _poster(self) -> RetryingPost:
        """The POST to predict, made on first use (the URL is checked then)."""
        if self._post is None:
            try:
                self._post = RetryingPost(
                    self.url,
                    timeout=self.timeout,
                    attempts=self.attempts,
                    backoff=self.backoff,
                    max_retry_after=self.max_retry_after,
                    retry_statuses=_RETRY_STATUSES,
                    fn_http_status=True,
                    retry_timeouts=False,
                    sleep=self._sleep,
                )
            except ValueError as exc:
                raise PredictUnavailableError(f"PREDICT_URL: {exc}") from exc
        return self._post

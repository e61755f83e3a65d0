"""What a call needs from the outside world: storage, the web, predict, the clock, and the settings.

``func.py`` builds one ``Deps`` per hot container (``build``: S3Store, UrlFetcher, PredictClient);
tests pass in-memory fakes of the three protocols below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fnvision_common.result_index import IndexStore

from .done import ServedModel
from .fetch_s3 import FetchedObject, RecordIndex, S3Store
from .fetch_url import FetchedUrl, UrlFetcher
from .predict_client import PredictAnswer, PredictClient
from .settings import Settings


class ObjectStore(Protocol):
    def get(self, bucket: str, key: str, max_bytes: int) -> FetchedObject: ...

    def list_names(self, bucket: str, prefix: str) -> set[str]: ...

    def delete(self, bucket: str, key: str) -> None: ...

    def put_if_absent(self, bucket: str, key: str, document: dict[str, Any]) -> str: ...


class Fetcher(Protocol):
    def fetch(self, url: str, max_bytes: int) -> FetchedUrl: ...


class Predictor(Protocol):
    def predict(
        self, batch: npt.NDArray[np.uint8], sources: list[dict[str, Any] | None], call_id: str | None
    ) -> PredictAnswer: ...


@dataclass
class Deps:
    """What the service needs from the outside world."""

    settings: Settings
    store: ObjectStore
    fetcher: Fetcher
    predictor: Predictor
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    served_model: ServedModel = field(default_factory=lambda: ServedModel(ttl=0.0))
    """The model predict answers with (per hot container); ttl 0 turns the duplicate check off."""
    index: IndexStore | None = None
    """Where failure records' result-index entries go (None: records are written without them)."""
    init_ms: float = 0.0
    """What building these took in the cold call (settings, S3 client): reported in that call's answer."""


def build(settings: Settings, store: S3Store, *, init_ms: float) -> Deps:
    """The deps of a hot container: ``store`` (built by the caller, who times it), the rest as configured."""
    return Deps(
        settings=settings,
        store=store,
        fetcher=UrlFetcher(
            allow_hosts=settings.url_allow_hosts,
            connect_timeout=settings.url_connect_timeout,
            read_timeout=settings.url_read_timeout,
            total_timeout=settings.url_total_timeout,
            max_redirects=settings.url_max_redirects,
        ),
        predictor=PredictClient(
            settings.predict_url,
            input_name=settings.model.name,
            top_k=settings.top_k,
            timeout=settings.predict_timeout,
            attempts=settings.predict_attempts,
            backoff=settings.predict_backoff,
            max_request_bytes=settings.predict_max_request_bytes,
        ),
        served_model=ServedModel(settings.done_check_seconds),
        index=RecordIndex(store) if settings.results_index else None,
        init_ms=init_ms,
    )

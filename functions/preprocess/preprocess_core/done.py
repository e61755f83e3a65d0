"""Is this object version already done? One LIST of its result folder instead of fetch + decode + inference.

Event delivery is at-least-once (S3, OCI, the watcher, the filer adapter's retries): duplicates are
normal, and without this check each one was fetched, decoded and inferred again before predict's
conditional put answered ``exists``. The folder of an object version (``result_keys.folder``)
holds its result per model version and its failure record, so one LIST answers both questions.

"Done" means a result of the model predict serves. Preprocess does not know that model on its own:
it learns it from predict's answers (every answer names it) and trusts it for ``ttl`` seconds
after the last answer. Once that is older, the next object goes to predict in full and refreshes
it, so a model swapped at predict (a config change of predict alone) is seen within ``ttl``
seconds; an object re-delivered inside that window is answered with the previous model's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fnvision_common.result_keys import FAILURE_NAME, folder


class Lister(Protocol):
    def list_names(self, bucket: str, prefix: str) -> set[str]: ...


@dataclass(frozen=True)
class Done:
    """What was found: the recorded result, or the failure record, of this object version."""

    kind: str
    """"result" or "failure"."""
    bucket: str
    key: str

    def to_answer(self) -> dict[str, Any]:
        """The ``result`` / ``failure`` entry of the per-item answer (as predict answers a duplicate)."""
        return {self.kind: {"bucket": self.bucket, "key": self.key, "status": "exists"}}


class ServedModel:
    """The model predict answered with last, per hot container (name, version), trusted ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._model: tuple[str, str] | None = None
        self._learned = 0.0

    def learn(self, model: Mapping[str, Any]) -> None:
        """Remember the model an answer named."""
        name, version = model.get("name"), model.get("version")
        if isinstance(name, str) and isinstance(version, str) and name and version:
            self._model, self._learned = (name, version), self._clock()

    def current(self) -> tuple[str, str] | None:
        """(name, version) while fresh; None when unknown, stale, or the check is off (ttl 0)."""
        if self._model is None or self._clock() - self._learned > self.ttl:
            return None
        return self._model


def find_done(
    lister: Lister, model: tuple[str, str], results_bucket: str, prefix: str, bucket: str, key: str, etag: str
) -> Done | None:
    """The result (for ``model``) or failure record of one object version, or None."""
    where = folder(prefix, bucket, key, etag)
    names = lister.list_names(results_bucket, where)
    document = f"{model[0]}@{model[1]}.json"
    if document in names:
        return Done("result", results_bucket, where + document)
    if FAILURE_NAME in names:
        return Done("failure", results_bucket, where + FAILURE_NAME)
    return None

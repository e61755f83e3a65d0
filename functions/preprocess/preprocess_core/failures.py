"""Failed items, their failure records, and when a failure fails the whole call.

"Nothing lost": every object of an event ends with a result, a failure record, or a failed call
that its event source delivers again.

- A *permanent* per-object failure (missing object, not an image, truncated, bomb, too large,
  predict rejected the image, the store refused its result) gets a failure record
  (docs/contracts.md §5, conditional put) and the other images carry on: one bad record never
  sinks the batch.
- A *retryable* per-object failure (storage read error, a result or failure record that could not
  be written) on a storage-event call fails the whole call with 502 ``storage_error`` once the good
  images have been predicted and recorded (``fail_if_retryable``); the retry is safe because results
  and failure records are written with a conditional put (done items answer "exists").
- A direct request for exactly one image answers with that image's error and status (404, 413,
  415, 422, ...); a call whose every object is malformed is a bad event (400) (``call_error``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fnvision_common.objects import ObjectRef
from fnvision_common.result_index import FAILURE_SCHEMA, format_time, write_indexed
from fnvision_common.result_keys import failure_key

from .deps import Deps
from .errors import BadEventError, PreprocessError, RecordRefusedError, StorageError
from .items import Item

log = logging.getLogger(__name__)
def fail(
    item: Item,
    error: PreprocessError,
    deps: Deps,
    call_id: str | None,
    *,
    stage: str,
    source: dict[str, Any] | None = None,
) -> Item:
    """The item failed at ``stage``; an object whose ``source`` names its version gets its failure record.

    ``source`` is the ``source`` block to record (docs/contracts.md §5); without one (a retryable
    error, or nothing known about the version) nothing is recorded.
    """
    failed = _failed(item, error)
    if isinstance(item.input, ObjectRef) and source is not None and source.get("etag"):
        return failed.answered(failure=_record(deps, source, error, call_id, stage=stage))
    return failed


def not_recorded(item: Item, result: dict[str, Any], deps: Deps, call_id: str | None) -> Item:
    """predict classified the image but could not write its result: record why, or let the event come again."""
    given = result.get("error")
    why: dict[str, Any] = given if isinstance(given, dict) else {}
    message = f"predict could not record {result.get('key', '?')}: {why.get('code', '?')}: {why.get('message', '')}"
    if why.get("code") == "record_refused":
        source = (item.predict_source or {}).get("metadata", {}).get("source")
        return fail(item, RecordRefusedError(message), deps, call_id, stage="record", source=source)
    # storage_unavailable (or anything unknown): not recorded, so the event must come again.
    return _failed(item, StorageError(message))


def call_error(items: list[Item], *, from_event: bool, ignored: int) -> PreprocessError | None:
    """The error the whole call answers with instead of a per-item answer, if any.

    A direct request for one image (nothing else in it) answers with that image's error; a call
    whose every object is malformed is a bad event (400): nothing to record or retry.
    """
    if not from_event and len(items) == 1 and items[0].error is not None and not ignored:
        return items[0].error
    malformed = [it.error for it in items if isinstance(it.error, BadEventError)]
    if items and len(malformed) == len(items):
        return malformed[0]
    return None


def fail_if_retryable(items: list[Item]) -> None:
    """On event calls, fail the call (502) if an object could be lost: a retryable error or no record."""
    lost = [
        it
        for it in items
        if (it.error is not None and it.error.status >= 500)
        or (isinstance(it.answer.get("failure"), dict) and it.answer["failure"].get("status") == "error")
    ]
    if not lost:
        return
    log.error(
        "event call fails so that it is delivered again",
        extra={"lost": [it.answer for it in lost], "images": len(items)},
    )
    first = lost[0].answer
    why = first.get("failure", {}).get("error") or first.get("error") or {}
    raise StorageError(
        f"{len(lost)} of {len(items)} objects could not be read or recorded "
        f"(first: {_name(first)}: {why.get('code', '?')}: {why.get('message', '')}); "
        "the call fails so that the event is delivered again (done objects then answer 'exists')"
    )


def _failed(item: Item, error: PreprocessError) -> Item:
    return Item(item.input, {**item.answer, "status": "failed", "error": error.detail()}, error)


def _name(answer: dict[str, Any]) -> str:
    if "bucket" in answer:
        return f"s3://{answer['bucket']}/{answer['key']}"
    return str(answer.get("url") or answer.get("upload") or "?")


def _record(
    deps: Deps, source: dict[str, Any], error: PreprocessError, call_id: str | None, *, stage: str
) -> dict[str, Any]:
    """Write the failure record once per object version; never raises (status "error" instead)."""
    settings = deps.settings
    bucket = settings.results_bucket
    key = failure_key(settings.results_prefix, source["bucket"], source["key"], source["etag"])

    def build(recorded_at: datetime) -> dict[str, Any]:
        return {
            "schema": FAILURE_SCHEMA,
            "source": source,
            "error": error.detail(),
            "stage": stage,
            "call_id": call_id,
            "recorded_at": format_time(recorded_at),
        }

    try:
        if deps.index is None:
            status = deps.store.put_if_absent(bucket, key, build(deps.now()))
        else:
            created = write_indexed(
                deps.index, bucket, settings.results_prefix, key, build, deps.now(),
                lambda document: deps.store.put_if_absent(bucket, key, dict(document)) == "created",
            )
            status = "created" if created else "exists"
    except RecordRefusedError as err:
        # Permanent: a retry would be refused the same way. Logged as an error, not retried for ever.
        log.error("failure record refused by the store", extra={"key": key, "why": err.message})
        return {"bucket": settings.results_bucket, "key": key, "status": "refused", "error": err.detail()}
    except StorageError as err:
        log.error("failure record not written", extra={"key": key, "why": err.message})
        return {"bucket": settings.results_bucket, "key": key, "status": "error", "error": err.detail()}
    return {"bucket": settings.results_bucket, "key": key, "status": status}

"""A decode that could end its container leaves a mark first, so a killer image ends as a failure record.

The decode budget (``images``: pixels, decoded bytes, JPEG coefficient buffers) is known before
decoding, and it keeps every decode inside the function's memory as far as we can model it. This
guard is for what the model misses: a decoder bug, a format quirk, a budget configured too large.
An out-of-memory kill leaves nothing behind in the process, and the event source delivers the
object again, to die again: a poison loop. So a *risky* decode (its estimated cost is at least a
quarter of ``MAX_DECODED_BYTES``) first writes a marker next to the object version's records
(``result_keys.attempt_key``, conditional put), and removes it when the decode ends, however it
ends. Markers still there are decodes that never ended: with ``MAX_ATTEMPTS`` of them present the
object is not decoded again but gets a failure record (``decode_killed``); the markers stay beside
it as the record of those kills (delete the three objects to have it tried again).

Cost: one PUT and one DELETE per risky image (a baseline JPEG of any size is never risky); nothing
for the others. Without an ETag (URL, upload) there is no version to key the marker by, and nothing
redelivers those anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from fnvision_common.result_keys import attempt_key

from .errors import DecodeKilledError, StorageError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2
RISKY_SHARE = 4
"""A decode is risky when its estimated cost is at least 1/RISKY_SHARE of MAX_DECODED_BYTES."""


class MarkerStore(Protocol):
    def put_if_absent(self, bucket: str, key: str, document: dict[str, Any]) -> str: ...

    def delete(self, bucket: str, key: str) -> None: ...


@contextmanager
def guarded(
    store: MarkerStore, results: tuple[str, str], source: dict[str, Any], cost: int, budget: int, call_id: str | None
) -> Iterator[None]:
    """Run the decode inside; raise DecodeKilledError instead if earlier attempts never ended."""
    etag = source.get("etag")
    if cost * RISKY_SHARE < budget or not etag or "bucket" not in source:
        yield
        return
    bucket, prefix = results
    keys = [attempt_key(prefix, source["bucket"], source["key"], etag, n) for n in range(1, MAX_ATTEMPTS + 1)]
    marker = {"schema": "fn-vision/attempt@1", "call_id": call_id, "estimated_bytes": cost}
    mine = next((key for key in keys if store.put_if_absent(bucket, key, marker) == "created"), None)
    if mine is None:
        raise DecodeKilledError(
            f"decoding this image ({cost} bytes estimated) ended its container {MAX_ATTEMPTS} times before "
            "(most likely out of memory); it is not tried again: lower MAX_DECODED_BYTES or give the "
            "function more memory, then delete this failure record and the attempt markers to retry"
        )
    try:
        yield
    finally:
        for key in keys:  # the decode ended: earlier markers were crashes of this same decode
            try:
                store.delete(bucket, key)
            except StorageError as exc:  # a marker left behind costs one attempt, never the result
                log.warning("decode marker not removed", extra={"key": key, "why": exc.message})

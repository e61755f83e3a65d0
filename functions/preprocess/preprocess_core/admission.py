"""Which object references a call may read: decided once, where the request is parsed.

A reference no store can hold (``result_keys.check_bucket_name`` / ``check_object_key``: an empty
name, a ``/`` in the bucket, a key over 1,024 bytes or not valid Unicode) is bad input (400
``bad_event``), refused before it could become a storage error worth retrying. An object in the
results bucket/prefix is never processed (no self-trigger loops): a storage event naming one is
acknowledged (``Ignored("results_location")``), a direct request is refused (422 ``refused_source``).

A refused reference keeps its place in the call as ``Refused``: that item fails alone, unread and
without a failure record (docs/contracts.md §5), and the other items carry on.
"""

from __future__ import annotations

from fnvision_common.objects import ObjectRef
from fnvision_common.result_keys import ResultKeyError, check_bucket_name, check_object_key, is_results_location

from .errors import BadEventError, PreprocessError, RefusedSourceError
from .inputs import Ignored, Input, Refused


def admit(
    inputs: list[Input], *, from_event: bool, results: tuple[str, str] | None
) -> tuple[list[Input], list[Ignored]]:
    """The inputs with each object reference that must not be read refused, and the acknowledged ones.

    ``results`` is the results area (bucket, prefix); ``None`` for callers that have none (tools
    that only read what an event names).
    """
    admitted: list[Input] = []
    ignored: list[Ignored] = []
    for item in inputs:
        if not isinstance(item, ObjectRef):
            admitted.append(item)
        elif from_event and results is not None and is_results_location(item.bucket, item.key, *results):
            ignored.append(Ignored("results_location", item.event_type, f"{item.bucket}/{item.key}"))
        else:
            error = refusal(item, results)
            admitted.append(item if error is None else Refused(item, error))
    return admitted, ignored


def refusal(ref: ObjectRef, results: tuple[str, str] | None) -> PreprocessError | None:
    """Why ``ref`` must not be read, or None."""
    try:
        check_bucket_name(ref.bucket)
    except ResultKeyError as exc:
        return BadEventError(str(exc))
    try:
        check_object_key(ref.key)
    except ResultKeyError as exc:
        return BadEventError(f"the event names no possible object in {ref.bucket!r}: {exc}")
    if results is not None and is_results_location(ref.bucket, ref.key, *results):
        return RefusedSourceError(f"s3://{ref.bucket}/{ref.key} is in the results area")
    return None

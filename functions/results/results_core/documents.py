"""The record of one source object: ``one`` (docs/contracts.md §5 names its folder).

With an ETag the folder of that object version is known (``result_keys.folder``); without one, the
object's current version is asked of the store (one HEAD), so "the newest" is the result of what
the bucket holds now. In the folder, a result document wins over a failure record; among results of
several model versions, the latest recorded.
"""

from __future__ import annotations

from fnvision_common.result_index import parse_time
from fnvision_common.result_keys import FAILURE_NAME, ResultKeyError, check_bucket_name, check_object_key, folder

from .errors import BadQueryError, NotFoundError
from .listing import Item
from .store import Reader


def _is_result(name: str, model: str | None, version: str | None) -> bool:
    if not name.endswith(".json") or "@" not in name or "/" in name:
        return False
    name_, _, version_ = name.removesuffix(".json").rpartition("@")
    return (model is None or name_ == model) and (version is None or version_ == version)


def find_one(
    reader: Reader,
    results_bucket: str,
    prefix: str,
    bucket: str,
    key: str,
    etag: str | None = None,
    model: str | None = None,
    model_version: str | None = None,
) -> Item:
    """The record of one source object version (``NotFoundError`` when there is none)."""
    try:
        check_bucket_name(bucket)
        check_object_key(key)
    except ResultKeyError as exc:
        raise BadQueryError(str(exc)) from exc
    if etag is None:
        etag = reader.etag(bucket, key)
        if etag is None:
            raise NotFoundError(f"s3://{bucket}/{key[:200]} does not exist now: give its etag")
    where = folder(prefix, bucket, key, etag)
    names = reader.names(results_bucket, where)
    results = sorted(n for n in names if _is_result(n, model, model_version))
    documents = [(n, reader.get_json(results_bucket, where + n)) for n in results]
    found = [(n, d) for n, d in documents if d is not None and isinstance(d.get("recorded_at"), str)]
    if found:
        name, document = max(found, key=lambda nd: parse_time(nd[1]["recorded_at"]))
        return Item(where + name, document)
    if FAILURE_NAME in names and model is None:
        failure = reader.get_json(results_bucket, where + FAILURE_NAME)
        if failure is not None:
            return Item(where + FAILURE_NAME, failure)
    raise NotFoundError(f"no record for s3://{bucket}/{key[:200]} version {etag[:80]}")

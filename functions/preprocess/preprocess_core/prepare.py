"""Inputs → items ready for predict: fetched, decoded to the model's tensor, described by their metadata.

A failure at any step fails that item (``failures``), never the others. On storage-event calls
(``check_done``) an object version whose outcome is already recorded is answered from that record
(status ``done``, ``done.py``) without being fetched, decoded or inferred.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
from fnvision_common.objects import ObjectRef
from fnvision_common.s3client import normalise_etag

from . import decode_guard, images, metadata
from .deps import Deps
from .done import Done, find_done
from .errors import ImageError, ObjectNotFoundError, PreprocessError, StorageError, TooLargeError
from .failures import fail
from .fetch import Fetched, event_source, fetch
from .inputs import Input
from .items import Chunk, Item, describe

log = logging.getLogger(__name__)


def prepare_chunk(inputs: list[Input], deps: Deps, call_id: str | None, *, check_done: bool) -> Chunk:
    """Prepare each input; the tensors of the items waiting for predict are stacked into one batch."""
    items: list[Item] = []
    tensors: list[npt.NDArray[np.uint8]] = []
    for inp in inputs:
        item, tensor = prepare(inp, deps, call_id, check_done=check_done)
        items.append(item)
        if tensor is not None:
            tensors.append(tensor)
    return Chunk(items, np.stack(tensors) if tensors else None)


def prepare(
    inp: Input, deps: Deps, call_id: str | None, *, check_done: bool = False
) -> tuple[Item, npt.NDArray[np.uint8] | None]:
    """One input → its item, and its tensor when it waits for predict (``item.predict_source`` set)."""
    item = Item(inp, describe(inp))
    if check_done and isinstance(inp, ObjectRef):
        done = _already_done(inp, deps)
        if done is not None:
            return item.answered(etag=normalise_etag(inp.etag), status="done", **done.to_answer()), None
    try:
        got = fetch(inp, deps.store, deps.fetcher, deps.settings.max_image_bytes)
    except PreprocessError as exc:
        return _fetch_failed(item, exc, deps, call_id), None
    if isinstance(inp, ObjectRef):
        item = item.answered(etag=got.source["etag"])
    try:
        tensor, meta = _decode(got, deps, call_id)
    except StorageError as exc:  # the guard's marker could not be written: retry later, don't risk it
        return fail(item, exc, deps, call_id, stage="decode"), None
    except (ImageError, TooLargeError) as exc:
        return fail(item, exc, deps, call_id, stage="decode", source=got.source), None
    if isinstance(inp, ObjectRef) and got.source.get("etag"):
        predict_source = {"bucket": inp.bucket, "key": inp.key, "etag": got.source["etag"], "metadata": meta}
    else:
        predict_source = {"metadata": meta}
    return Item(inp, item.answer, predict_source=predict_source), tensor


def _fetch_failed(item: Item, exc: PreprocessError, deps: Deps, call_id: str | None) -> Item:
    """Too many bytes, or no such object version, is permanent: recorded under the event's ETag.

    Other fetch errors are not recorded: storage errors fail an event call (a retry), and a refused
    reference names no object that could have a record.
    """
    inp = item.input
    permanent = isinstance(exc, (TooLargeError, ObjectNotFoundError))
    if permanent and isinstance(inp, ObjectRef) and normalise_etag(inp.etag):
        known = event_source(inp)
        return fail(item.answered(etag=known["etag"]), exc, deps, call_id, stage="fetch", source=known)
    return fail(item, exc, deps, call_id, stage="fetch")


def _decode(got: Fetched, deps: Deps, call_id: str | None) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    """The model's tensor and the image's metadata (source, image, exif), under the decode guard."""
    settings = deps.settings
    img = images.open_image(got.data, settings.max_pixels, settings.max_decoded_bytes)
    results = (settings.results_bucket, settings.results_prefix)
    cost = images.decode_cost(img, got.data)
    with decode_guard.guarded(deps.store, results, got.source, cost, settings.max_decoded_bytes, call_id):
        info = metadata.image_info(img, got.data, images.is_animated(img))
        exif = metadata.read_exif(img)
        prepared = images.to_tensor(img, settings.model, max_decoded_bytes=settings.max_decoded_bytes)
    return prepared.tensor, {"source": got.source, "image": info, "exif": exif.to_dict(settings.store_gps)}


def _already_done(ref: ObjectRef, deps: Deps) -> Done | None:
    """The recorded outcome of this object version (done.py), or None: unknown, not done, or no answer."""
    model = deps.served_model.current()
    etag = normalise_etag(ref.etag)
    if model is None or not etag:
        return None
    s = deps.settings
    try:
        return find_done(deps.store, model, s.results_bucket, s.results_prefix, ref.bucket, ref.key, etag)
    except StorageError as exc:  # the check only saves work: without an answer, do the work
        log.warning("duplicate check failed", extra={"why": exc.message})
        return None

"""Give the memory of a large call back to the system once its response is on its way.

A call with a 16 MiB JSON body allocates the body (twice while the fdk receives it), the output array
and the parsing pieces; glibc keeps what they freed in its heap (its trim and mmap thresholds grow
with the sizes it has seen), so a hot container stayed ~60 MB above its idle size after such a call.
``malloc_trim(0)`` hands that back. It must run after the fdk has dropped the request body, that is
after the handler returned: the fdk calls the handler in its asyncio event loop, so the trim is
scheduled there (``call_soon``), and runs at once when there is no running loop.

Measured (bench/json_memory.py): RSS after a max-size JSON call 145-177 MiB without, 114 MiB with it;
the peak of a call does not change (freed memory is reused either way). Setting glibc's thresholds
(mallopt) instead returned memory too but cost 15-20% more CPU per large JSON call.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 1 << 20
"""Bodies at least this large get a trim after their call."""


def _malloc_trim() -> Callable[[], None] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc (the fnproject/python images); absent from musl
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


_TRIM = _malloc_trim()


def release_after_call(body_bytes: int) -> bool:
    """Schedule a malloc_trim after a call whose body had ``body_bytes``; True when one was scheduled."""
    if _TRIM is None or body_bytes < TRIM_AFTER_BYTES:
        return False
    try:
        asyncio.get_running_loop().call_soon(_TRIM)
    except RuntimeError:  # not called from an event loop (tests, benchmarks): trim now
        _TRIM()
    return True

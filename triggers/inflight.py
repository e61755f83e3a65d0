"""Object versions being delivered right now, shared by the event sources of one process.

The filer adapter and the bucket watcher run side by side (the watcher is the safety net for what the
adapter may lose). Before this ledger the watcher re-sent objects the adapter was still delivering
(it learnt of a delivery only once it returned): under a burst, 31 % of all inferences were
redundant. A source sends an object version only after claiming it here, and releases it when its
delivery ended (the adapter: after the watcher's snapshot recorded it, or when it gives up).

In memory on purpose: a crash forgets every claim together with the deliveries they guarded, and
the watcher's persisted snapshot still lists those objects as undelivered, so nothing is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from fnvision_common.objects import ObjectRef


class InFlight:
    """A thread-safe set of (bucket, key, etag) being delivered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: set[tuple[str, str, str]] = set()

    def claim(self, ref: ObjectRef) -> bool:
        """Take ``ref`` for delivery; False if another source is delivering it."""
        ident = (ref.bucket, ref.key, ref.etag)
        with self._lock:
            if ident in self._busy:
                return False
            self._busy.add(ident)
            return True

    def release(self, refs: Iterable[ObjectRef]) -> None:
        """The deliveries of ``refs`` ended (delivered, or handed back to be sent again later)."""
        with self._lock:
            for ref in refs:
                self._busy.discard((ref.bucket, ref.key, ref.etag))

    def __len__(self) -> int:
        with self._lock:
            return len(self._busy)

"""In-memory stand-ins for the result store (unit tests only; deployed code has none)."""

from __future__ import annotations


class MemoryResultStore:
    """Predict's ``ResultStore`` in memory, with the conditional put's semantics."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_if_absent(self, bucket: str, key: str, body: bytes) -> bool:
        """Store body unless the key is taken."""
        if (bucket, key) in self.objects:
            return False
        self.objects[(bucket, key)] = body
        return True

"""Top-k labels from a batch of class probabilities (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .codecs.base import Label
from .errors import InvalidParameterError


def check_k(k: int, classes: int) -> int:
    """Return k if 1 <= k <= classes, else raise InvalidParameterError."""
    if not 1 <= k <= classes:
        raise InvalidParameterError(f"top_k must be between 1 and {classes}, got {k}")
    return k


def top_k(probabilities: npt.NDArray[Any], k: int, labels: Sequence[str]) -> list[list[Label]]:
    """Return, per row, the k best classes by descending score (ties: lower index first)."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"probabilities {probs.shape} do not match {len(labels)} labels")
    k = check_k(k, probs.shape[1])
    # A full stable sort of 1000 scores costs microseconds and makes ties deterministic.
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    rows: list[list[Label]] = []
    for row, best in zip(probs, order, strict=True):
        rows.append([Label(int(i), labels[int(i)], round(float(row[i]), 6)) for i in best])
    return rows

"""The base of every error a function answers with: a stable code, an HTTP status, a message.

Each function keeps its own tree under this base (predict_core/errors.py, preprocess_core/errors.py),
where each class fixes its status and code; the body shape is defined here once
(docs/contracts.md §6): ``{"error": {"code", "message"}}``, and per-item answers carry ``detail()``.
"""

from __future__ import annotations

from http import HTTPStatus


class FnVisionError(Exception):
    """An expected failure: status and stable snake_case code fixed per class, message per instance."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def detail(self) -> dict[str, str]:
        """``{"code", "message"}``: what per-item answers and records carry."""
        return {"code": self.code, "message": self.message}

    def to_body(self) -> dict[str, dict[str, str]]:
        """The error body of a whole call: ``{"error": {"code", "message"}}``."""
        return {"error": self.detail()}

"""The base of every error a function or tool reports: a stable code, an HTTP status, a message.

Each function keeps its own tree under this base (predict_core/errors.py, preprocess_core/errors.py),
where each class fixes its status and code; the body shape is defined here once
(docs/contracts.md §6): ``{"error": {"code", "message"}}``, and per-item answers carry ``detail()``.

The model repository's errors (docs/contracts.md §2) live here too, because the model tools
(``vision-model``) and predict report the same failures of the same files:

    FnVisionError (500 internal_error)
    ├── ManifestError (500 invalid_manifest)        manifest.json missing, not JSON, not the documented shape
    │   └── UnknownTaskError (500 unknown_task)      a task other than classification / regression / raw
    └── ModelRepositoryError (503 model_unavailable) a repository, model or version cannot be used
        ├── ModelNotFoundError (404 model_not_found)
        │   └── ModelVersionNotFoundError (404 model_version_not_found)
        ├── ModelRefError (400 invalid_model_ref)               a model name, version or repository URI not well-formed
        ├── ModelVersionExistsError (409 model_version_exists)  published versions are never rewritten
        ├── ArtifactMissingError (503 model_artifact_missing)
        ├── ArtifactCorruptError (500 model_corrupt)            sha256 differs from the manifest
        ├── ArtifactLoadError (500 model_unloadable)            the file verifies but its engine cannot run it
        └── ModelImportError (400 invalid_model)                a model the import cannot turn into a version

Messages are one line and name the fix, because the command line prints them as they are.
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


class ManifestError(FnVisionError, ValueError):
    """The manifest is missing, not JSON, or not the documented shape (a ValueError, as it always was)."""

    code = "invalid_manifest"


class UnknownTaskError(ManifestError):
    """The manifest (or an import) names a task this project does not serve."""

    code = "unknown_task"


class ModelRepositoryError(FnVisionError):
    """A model repository, model or version cannot be used."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_unavailable"


class ModelNotFoundError(ModelRepositoryError):
    """The repository holds no model of that name."""

    status = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class ModelVersionNotFoundError(ModelNotFoundError):
    """The model exists but not in that version."""

    code = "model_version_not_found"


class ModelRefError(ModelRepositoryError):
    """A model name, version or repository URI that is not well-formed."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_model_ref"


class ModelVersionExistsError(ModelRepositoryError):
    """A publish would replace a version: published versions are immutable."""

    status = HTTPStatus.CONFLICT
    code = "model_version_exists"


class ArtifactMissingError(ModelRepositoryError):
    """A file the manifest lists is not there."""

    code = "model_artifact_missing"


class ArtifactCorruptError(ModelRepositoryError):
    """A file's sha256 differs from the manifest's."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "model_corrupt"


class ArtifactLoadError(ModelRepositoryError):
    """A file matches its sha256 but its engine cannot load or run it."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "model_unloadable"


class ModelImportError(ModelRepositoryError):
    """A user's model cannot be imported as given (format, inputs, options)."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_model"

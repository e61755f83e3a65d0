"""``python -m modelbuild --out functions/predict/model [--repo .local/models] [--force]`` (``make model``).

Builds the default model (EfficientNet-Lite0) into the repository and installs a copy of that
version as the plain model folder predict and preprocess read today. The repository build skips
work when its inputs are unchanged, and the copy is skipped when the folder already matches.
``vision-model`` (modelbuild/cli.py) is the full command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_REPO = Path(".local/models")


def main(argv: Sequence[str] | None = None) -> int:
    """Build and install; exit 0 when built or up to date, 1 when a check fails."""
    parser = argparse.ArgumentParser(prog="python -m modelbuild", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("functions/predict/model"), help="model folder to install")
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="model repository to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    args = parser.parse_args(argv)
    # Silence TensorFlow's C++ info/warning chatter before it is first imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from fnvision_common.errors import FnVisionError
    from fnvision_common.repository import LocalRepository

    from modelbuild.build import build_model, install_folder
    from modelbuild.catalog import DEFAULT_MODEL

    try:
        folder, built = build_model(LocalRepository(args.repo), DEFAULT_MODEL, force=args.force)
        installed = install_folder(folder, args.out.resolve())
    except FnVisionError as e:
        print(f"[modelbuild] FAILED: {e.message}", file=sys.stderr)
        return 1
    if not built and not installed:
        print(f"model up to date ({args.out})", flush=True)
    elif installed:
        print(f"installed {folder} as {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m modelbuild --out functions/predict/model [--force]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Build the model directory; exit 0 when built or up to date, 1 when a check fails."""
    parser = argparse.ArgumentParser(prog="python -m modelbuild", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("functions/predict/model"), help="model directory")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    args = parser.parse_args(argv)
    # Silence TensorFlow's C++ info/warning chatter before it is first imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from modelbuild.export import BuildError, build

    try:
        build(args.out, force=args.force)
    except BuildError as e:
        print(f"[modelbuild] FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Each function folder carries its own copy of the shared modules; they must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = ["s3client.py", "jsonlog.py", "result_keys.py", "fnstatus.py", "threadpools.py"]
COPIES = [REPO / "functions/predict/predict_core", REPO / "functions/preprocess/preprocess_core"]


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("folder", COPIES, ids=lambda p: p.parent.name)
def test_copy_matches_common(folder: Path, name: str) -> None:
    source = (REPO / "common" / name).read_bytes()
    assert (folder / name).read_bytes() == source, f"run `make sync`: {folder / name} differs from common/"

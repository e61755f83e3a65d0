"""Issue 10 item 4: back-to-back maximum-size JSON batches in ONE predict container under its func.yaml memory.

Before leanjson, the second 16 MB JSON batch got fnlocal's 502 "container out of memory" (real Fn: the
cgroup OOM killer): each call peaked at 240-300 MiB and the process kept ~170 MiB afterwards. fnlocal
enforces func.yaml `memory` by polling RSS; the process's own VmHWM is checked as well (no poll can
miss it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.integration.fnlocal_helpers import DEPS_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREDICT = REPO / "functions" / "predict"
MAX_JSON_BYTES = 16 << 20  # the default of MAX_JSON_BYTES (settings.py)


def _pad(head: str, data: str, tail: str) -> bytes:
    """A body of exactly MAX_JSON_BYTES (trailing whitespace is valid JSON)."""
    body = (head + data + tail).encode()
    assert len(body) <= MAX_JSON_BYTES, len(body)
    return body + b" " * (MAX_JSON_BYTES - len(body))


def _oip(n: int, datatype: str, data: str) -> bytes:
    return _pad(
        f'{{"inputs": [{{"name": "images", "shape": [{n}, 224, 224, 3], "datatype": "{datatype}", "data": ', data, "}]}"
    )


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    images = np.random.default_rng(10).integers(0, 256, (21, 224, 224, 3), dtype=np.uint8)
    issue_batch = _oip(21, "UINT8", json.dumps(images.tolist()))  # the issue's 16.06 MB request, json.dumps style
    most_values = _oip(55, "FP32", "[" + ",".join(["0"] * (55 * 224 * 224 * 3)) + "]")  # largest output array
    return [issue_batch, most_values]


@pytest.fixture(scope="module")
def fl() -> Iterator[Any]:
    from fnlocal import FnLocal

    with FnLocal(str(REPO), port=0, deps_dir=DEPS_DIR, max_containers=1) as running:
        yield running


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def test_ten_maximum_size_json_batches_back_to_back_in_one_container(fl: Any, bodies: list[bytes]) -> None:
    memory_mb = int(yaml.safe_load((PREDICT / "func.yaml").read_text())["memory"])
    assert [f["memory_mb"] for f in fl.status()["functions"] if f["name"] == "predict"] == [memory_mb]
    pids = set()
    with httpx.Client(timeout=120) as http:
        for i in range(10):
            body = bodies[i % 2]
            reply = http.post(
                fl.invoke_url("vision", "predict"), content=body, headers={"Content-Type": "application/json"}
            )
            assert reply.status_code == 200, (i, reply.text[:300])
            doc = reply.json()
            assert "error" not in doc, (i, doc)
            assert len(doc["outputs"][0]["data"]) == doc["outputs"][0]["shape"][0] * 5
            pids.add(int(reply.headers["Fn-Local-Container"]))
            assert reply.headers["Fn-Local-Cold"] == ("true" if i == 0 else "false")
    assert len(pids) == 1  # one container answered all ten
    pid = pids.pop()
    peak = _status_mib(pid, "VmHWM")
    assert peak < memory_mb, f"peak RSS {peak:.0f} MiB over func.yaml memory {memory_mb}"
    # and the memory of the last call went back (predict_core/memory.py): ~114 MiB idle, ~170 before
    time.sleep(0.3)
    assert _status_mib(pid, "VmRSS") < 140

"""Many cold containers loading the same s3:// model into one shared MODEL_CACHE_DIR (real SeaweedFS).

Each worker is a separate process started as Fn starts a function (``python -S``, PYTHONPATH =
function folder, then packages), running two threads that call the real loader at the same moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fdkproc import python_path

REPO = Path(__file__).resolve().parents[2]
FUNCTION_DIR = REPO / "functions" / "predict"
PROCESSES = 4
THREADS = 2
pytestmark = pytest.mark.integration

WORKER = """
import json, os, sys, threading, time
from pathlib import Path
from predict_core.model import load_model
from fnvision_common.s3client import make_client
from predict_core.settings import Settings

settings = Settings.from_env(os.environ, "/nowhere")
client = make_client(settings.s3)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
results = []

def load():
    try:
        model = load_model(settings, lambda: client)
        results.append({"ok": True, "digest": model.manifest.digest, "top": int(model.engine.predict(
            __import__("numpy").zeros((1, 224, 224, 3), "float32")).argmax())})
    except BaseException as exc:
        results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})

threads = [threading.Thread(target=load) for _ in range(int(sys.argv[2]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


def _upload_model(s3: Any, bucket: str, prefix: str, model_dir: Path) -> None:
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(model_dir).as_posix(), Body=path.read_bytes())


def _load_concurrently(env: dict[str, str], tmp_path: Path) -> list[dict[str, Any]]:
    go = tmp_path / f"go-{time.monotonic_ns()}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", WORKER, str(go), str(THREADS)],
            cwd=tmp_path,
            env={**os.environ, **env, "PYTHONPATH": python_path(FUNCTION_DIR)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    time.sleep(1.0)  # let every worker import and wait at the start line
    go.touch()
    results: list[dict[str, Any]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err.decode(errors="replace")[-3000:]
        results.extend(json.loads(out.decode().strip().splitlines()[-1]))
    return results


@pytest.fixture
def s3_model(seaweed: Any, s3: Any, new_bucket: Any, model_dir: Path, tmp_path: Path) -> dict[str, str]:
    bucket = new_bucket("models")
    _upload_model(s3, bucket, "lite0/", model_dir)
    cache = tmp_path / "cache"
    return {**seaweed.env(), "MODEL_URI": f"s3://{bucket}/lite0/", "MODEL_CACHE_DIR": str(cache)}


def _published(model_dir: Path, engine: str = "litert") -> str:
    return hashlib.sha256((model_dir / "manifest.json").read_bytes()).hexdigest()[:32] + "-" + engine


def test_cold_containers_share_one_verified_download(s3_model: dict[str, str], model_dir: Path, tmp_path: Path) -> None:
    cache = Path(s3_model["MODEL_CACHE_DIR"])
    for _ in range(2):  # first round: all cold, racing to publish; second: all reuse the published folder
        results = _load_concurrently(s3_model, tmp_path)
        assert len(results) == PROCESSES * THREADS
        assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
        assert len({(r["digest"], r["top"]) for r in results}) == 1
        assert sorted(p.name for p in cache.iterdir()) == [_published(model_dir)], "no temporary folder is left"
    folder = cache / _published(model_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["efficientnet_lite0.tflite", "labels.json", "manifest.json"]
    assert (folder / "efficientnet_lite0.tflite").read_bytes() == (model_dir / "efficientnet_lite0.tflite").read_bytes()


def test_a_broken_folder_under_the_published_name_is_replaced(
    s3_model: dict[str, str], model_dir: Path, tmp_path: Path
) -> None:
    cache = Path(s3_model["MODEL_CACHE_DIR"])
    broken = cache / _published(model_dir)
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_bytes((model_dir / "manifest.json").read_bytes())
    (broken / "labels.json").write_bytes((model_dir / "labels.json").read_bytes())
    (broken / "efficientnet_lite0.tflite").write_bytes(b"half a download")
    stale = cache / ".dl-dead"
    stale.mkdir()
    os.utime(stale, (0, 0))  # a download of a container killed long ago

    results = _load_concurrently(s3_model, tmp_path)

    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert sorted(p.name for p in cache.iterdir()) == [_published(model_dir)]
    assert (broken / "efficientnet_lite0.tflite").read_bytes() == (model_dir / "efficientnet_lite0.tflite").read_bytes()

"""The results app with real records: one stack for the results tests of this session.

The pipeline classifies real photos under two prefixes (and a file that is no image), then a second
fnlocal serving the same app with the model's manifest at version 2.0.0 classifies two of them again:
results of two model versions, a failure record, all through upload → filer webhook → preprocess →
predict → result + index.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.pipeline import Upload, read_manifest, upload_files, wait_for_results
from devstack.ports import free_port
from devstack.seaweedfs import find_free_base
from devstack.stack import LocalStack, StackOptions
from fnlocal import FnLocal
from modelbuild.photos import sample_photos, write_jpegs

REPO = Path(__file__).resolve().parents[2]
RUN_A = ["chelsea", "coffee", "astronaut", "rocket", "camera"]
V2_NAMES = ["chelsea", "coffee"]


@dataclass
class ResultsApp:
    stack: LocalStack
    base: str
    """Trigger base, e.g. http://127.0.0.1:PORT/t/vision"""
    run_a: list[Upload]
    run_b: list[Upload]
    failure: Upload
    v2: list[str]
    """Keys classified again by model version 2.0.0."""
    model: tuple[str, str]

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def uploads(self) -> list[Upload]:
        return [*self.run_a, *self.run_b, self.failure]


def _model_v2(model_dir: Path, target: Path) -> Path:
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("*_savedmodel"))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = "2.0.0"
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture(scope="session")
def results_app(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ResultsApp]:
    data = tmp_path_factory.mktemp("results-stack")
    manifest = read_manifest(model_dir)
    options = StackOptions(root=REPO, data_dir=data, s3_base_port=find_free_base(), fn_port=free_port())
    with LocalStack(options) as stack:
        assert stack.seaweed is not None and stack.fnlocal is not None
        client = stack.seaweed.client()
        photos = {p.name: p for p in sample_photos()}
        files = {f.stem: f for f in write_jpegs(data / "photos", list(photos.values()))}
        not_image = data / "notes.jpg"
        not_image.write_bytes(b"this is not a JPEG, whatever its name says")
        run_a = upload_files(client, "images", [files[n] for n in RUN_A], "gallery/a/")
        (failure,) = upload_files(client, "images", [not_image], "gallery/a/")
        done = wait_for_results(client, [*run_a, failure], input_bucket="images", results_bucket="results",
                                results_prefix="", model_name=manifest.name, model_version=manifest.version)
        assert [o.status for o in done] == ["result"] * len(RUN_A) + ["failure"], done
        run_b = upload_files(client, "images", [f for n, f in files.items() if n not in RUN_A], "gallery/b/")
        done = wait_for_results(client, run_b, input_bucket="images", results_bucket="results",
                                results_prefix="", model_name=manifest.name, model_version=manifest.version)
        assert all(o.status == "result" for o in done), done
        # Model version 2.0.0: the same app, served by a second fnlocal whose predict has that manifest.
        v2_dir = _model_v2(model_dir, data / "model-v2")
        config = {**stack.function_config(stack.seaweed.env()), "MODEL_URI": str(v2_dir)}
        v2_keys = [f"gallery/a/{files[n].name}" for n in V2_NAMES]
        with FnLocal(str(REPO), port=free_port(), env_overrides=config, log=data / "v2.log") as second:
            reply = httpx.post(second.invoke_url("vision", "preprocess"), timeout=120,
                               json=[{"bucket": "images", "key": k} for k in v2_keys])
            assert reply.status_code == 200, reply.text
            statuses = [p.get("result", {}).get("status") for p in reply.json()["predictions"]]
            assert statuses == ["created", "created"], reply.text
        yield ResultsApp(stack, f"{stack.fnlocal.url}/t/vision", run_a, run_b, failure, v2_keys,
                         (manifest.name, manifest.version))

"""multipart/form-data uploads and settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from preprocess_core import multipart
from preprocess_core.errors import BadEventError, ConfigError
from preprocess_core.events import Upload, parse_request
from preprocess_core.settings import MANIFEST_FILE, ModelInput, Settings

from tests.data import manifests

# Binary content with CRLFs, dashes and a fake boundary-like line inside.
TRICKY = b"\xff\xd8\xff\xe0\r\n--\r\n\r\n--notaboundary\r\nbody\x00\x01\r\n"


def encoded(files: list[tuple[str, tuple[str, bytes, str]]], data: dict[str, str] | None = None):
    request = httpx.Request("POST", "http://x/classify", files=files, data=data or {})
    return request.read(), request.headers["content-type"]


def test_one_image_field_roundtrips_binary_exactly() -> None:
    body, ctype = encoded([("image", ("cat.jpg", TRICKY, "image/jpeg"))], {"note": "hi"})
    parts = multipart.image_parts(body, ctype)
    assert [(p.name, p.filename, p.content_type, p.data) for p in parts] == [("image", "cat.jpg", "image/jpeg", TRICKY)]


def test_several_images_through_parse_request() -> None:
    files = [("image", (f"c{i}.jpg", TRICKY + bytes([i]), "image/jpeg")) for i in range(3)]
    body, ctype = encoded(files)
    req = parse_request(body, {"content-type": ctype})
    assert req.inputs == [Upload(f"c{i}.jpg", TRICKY + bytes([i]), "image/jpeg") for i in range(3)]
    assert not req.from_event


def test_curl_style_body_with_quoted_unicode_filename() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="image"; filename="chat \xc3\xa9t\xc3\xa9.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + TRICKY + b"\r\n--XyZ--\r\n"
    )
    (part,) = multipart.image_parts(body, "multipart/form-data; boundary=XyZ")
    assert part.data == TRICKY and part.filename == "chat été.png"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        (b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nx', "multipart/form-data; boundary=b"),
        (b"no boundary here", "multipart/form-data; boundary=b"),
        (b"--b--", "multipart/form-data"),
    ],
)
def test_bad_forms(body: bytes, ctype: str) -> None:
    with pytest.raises(BadEventError):
        multipart.image_parts(body, ctype)


# --- settings ---------------------------------------------------------------------------------


FUNC_DIR = Path(__file__).resolve().parents[2] / "functions" / "preprocess"
PREDICT_MANIFEST = Path(__file__).resolve().parents[2] / "functions" / "predict" / "model" / "manifest.json"


def write_manifest(path: Path, size: int = 300, name: str = "x", shorter: int | None = 320) -> Path:
    return manifests.write_manifest(path, size=size, input_name=name, resize_shorter=shorter)


def test_defaults() -> None:
    s = Settings.from_env({"MODEL_INPUT_SIZE": "224"})
    assert s.model == ModelInput(name="images", size=224, resize_shorter=256)
    assert not s.store_gps and s.results_bucket == "results" and s.url_allow_hosts == frozenset()
    assert s.max_decoded_bytes == 100_000_000 and s.log_level == "INFO"


def test_no_model_input_size_anywhere_is_a_config_error(tmp_path: Path) -> None:
    # Nothing assumes 224: without a manifest or MODEL_INPUT_SIZE the function refuses to run.
    for default in (None, tmp_path / MANIFEST_FILE):
        with pytest.raises(ConfigError) as err:
            Settings.from_env({}, default_manifest=default)
        assert "MODEL_MANIFEST" in err.value.message and "MODEL_INPUT_SIZE" in err.value.message


def test_manifest_next_to_func_py_is_the_default(tmp_path: Path) -> None:
    default = write_manifest(tmp_path / MANIFEST_FILE)
    assert Settings.from_env({}, default_manifest=default).model == ModelInput(name="x", size=300, resize_shorter=320)
    # MODEL_MANIFEST points elsewhere; MODEL_INPUT_SIZE / MODEL_INPUT_NAME override both.
    other = write_manifest(tmp_path / "other.json", size=256, name="y", shorter=None)
    assert Settings.from_env({"MODEL_MANIFEST": str(other)}, default_manifest=default).model == ModelInput(
        name="y", size=256, resize_shorter=293
    )
    env = {"MODEL_MANIFEST": str(other), "MODEL_INPUT_SIZE": "192", "MODEL_INPUT_NAME": "z"}
    assert Settings.from_env(env, default_manifest=default).model == ModelInput(name="z", size=192, resize_shorter=219)


def test_real_predict_manifest_gives_its_input(tmp_path: Path) -> None:
    if not PREDICT_MANIFEST.exists():
        pytest.skip("model not built: run `make model`")
    # What `make model` does: copy predict's manifest next to preprocess's func.py.
    default = tmp_path / MANIFEST_FILE
    shutil.copy(PREDICT_MANIFEST, default)
    doc = json.loads(PREDICT_MANIFEST.read_text())  # manifest v2 (docs/contracts.md §2)
    (spec,) = doc["inputs"]
    model = Settings.from_env({}, default_manifest=default).model
    assert model.name == spec["name"] and model.size == spec["shape"][1]
    assert model.resize_shorter == doc["preprocessing"]["resize_shorter_to"]


def test_generated_manifest_copy_is_git_ignored() -> None:
    ignore = (FUNC_DIR.parents[1] / ".gitignore").read_text().splitlines()
    assert f"functions/preprocess/{MANIFEST_FILE}" in ignore


def test_values_and_allow_list() -> None:
    s = Settings.from_env(
        {
            "MODEL_INPUT_SIZE": "192",
            "STORE_GPS": "true",
            "URL_ALLOW_HOSTS": " 127.0.0.1, Images.Local ,[::1]",
            "TOP_K": "3",
            "LOG_LEVEL": "debug",
            "MAX_DECODED_BYTES": "5000000",
        }
    )
    assert s.model.size == 192 and s.model.resize_shorter == 219
    assert s.store_gps and s.top_k == 3 and s.url_allow_hosts == {"127.0.0.1", "images.local", "::1"}
    assert s.log_level == "DEBUG" and s.max_decoded_bytes == 5_000_000


@pytest.mark.parametrize(
    "env",
    [
        {"MAX_PIXELS": "lots"},
        {"STORE_GPS": "maybe"},
        {"PREDICT_TIMEOUT": "-1"},
        {"MODEL_MANIFEST": "/nope.json"},
        {"S3_ADDRESSING_STYLE": "x"},
        {"LOG_LEVEL": "LOUD"},
        {"LOG_LEVEL": "10"},
        {"MAX_DECODED_BYTES": "1"},
        {"MODEL_INPUT_SIZE": "big"},
    ],
)
def test_bad_values_name_the_key(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"MODEL_INPUT_SIZE": "224", **env})
    assert next(iter(env)) in str(err.value)

"""multipart/form-data uploads and settings."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from preprocess_core import multipart
from preprocess_core.errors import BadEventError, ConfigError
from preprocess_core.events import Upload, parse_request
from preprocess_core.settings import DEFAULT_INPUT_SIZE, ModelInput, Settings

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


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.model == ModelInput(name="images", size=DEFAULT_INPUT_SIZE, resize_shorter=256)
    assert not s.store_gps and s.results_bucket == "results" and s.url_allow_hosts == frozenset()


def test_values_and_allow_list() -> None:
    s = Settings.from_env(
        {
            "MODEL_INPUT_SIZE": "192",
            "STORE_GPS": "true",
            "URL_ALLOW_HOSTS": " 127.0.0.1, Images.Local ,[::1]",
            "TOP_K": "3",
        }
    )
    assert s.model.size == 192 and s.model.resize_shorter == 219
    assert s.store_gps and s.top_k == 3 and s.url_allow_hosts == {"127.0.0.1", "images.local", "::1"}


def test_manifest_wins(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "input": {
                    "name": "x",
                    "shape": [None, 300, 300, 3],
                    "preprocessing": {"resize_shorter_to": 320, "center_crop": 300},
                }
            }
        )
    )
    s = Settings.from_env({"MODEL_MANIFEST": str(manifest), "MODEL_INPUT_SIZE": "224"})
    assert s.model == ModelInput(name="x", size=300, resize_shorter=320)


@pytest.mark.parametrize(
    "env",
    [
        {"MAX_PIXELS": "lots"},
        {"STORE_GPS": "maybe"},
        {"PREDICT_TIMEOUT": "-1"},
        {"MODEL_MANIFEST": "/nope.json"},
        {"S3_ADDRESSING_STYLE": "x"},
    ],
)
def test_bad_values_name_the_key(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert next(iter(env)) in str(err.value)

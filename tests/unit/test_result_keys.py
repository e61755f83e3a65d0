"""Result and failure-record keys (common/result_keys.py): natural form, fixed-length form, checks."""

from __future__ import annotations

import hashlib

import pytest
from fnvision_common.result_keys import (
    LONG_FOLDER,
    MAX_KEY_BYTES,
    ResultKeyError,
    check_object_key,
    failure_key,
    result_key,
)


def test_natural_form_for_ordinary_keys() -> None:
    assert result_key("v1/", "images", "cats/a b.jpg", '"abc"', "m", "1") == "v1/images/cats/a b.jpg/abc/m@1.json"
    assert failure_key("v1", "images", "cats/a.jpg", "abc") == "v1/images/cats/a.jpg/abc/failure.json"


@pytest.mark.parametrize("length", [800, 900, 1000, 1024])
@pytest.mark.parametrize("char", ["k", "é", "猫"])
def test_every_legal_key_gets_keys_that_fit(length: int, char: str) -> None:
    key = (char * length).encode()[:length].decode("utf-8", "ignore")
    check_object_key(key)
    for prefix in ("", "results/v1/"):
        rkey = result_key(prefix, "a-bucket-name-of-some-length", key, "d41d8cd98f00b204e9800998ecf8427e-12",
                          "efficientnet-lite0", "1.0.0")
        fkey = failure_key(prefix, "a-bucket-name-of-some-length", key, "d41d8cd98f00b204e9800998ecf8427e-12")
        assert len(rkey.encode()) <= MAX_KEY_BYTES and len(fkey.encode()) <= MAX_KEY_BYTES
        assert rkey.rsplit("/", 1)[0] == fkey.rsplit("/", 1)[0], "result and failure record share one folder"


def test_long_form_is_deterministic_and_cannot_be_a_natural_key() -> None:
    key = "x" * 1000
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert result_key("", "images", key, "e1", "m", "1") == f"{LONG_FOLDER}/images/{digest}/e1/m@1.json"
    # A natural key starts with the bucket name, and no bucket name can start with "~".
    natural = result_key("", "images", f"{LONG_FOLDER}/images/{digest}", "e1", "m", "1")
    assert not natural.startswith(LONG_FOLDER)


def test_a_forged_etag_is_hashed_in_the_long_form() -> None:
    rkey = result_key("", "images", "a.jpg", "e/" * 300, "m", "1")
    assert rkey.startswith(f"{LONG_FOLDER}/") and len(rkey.encode()) < 300


@pytest.mark.parametrize(
    ("key", "why"),
    [("", "empty"), ("k" * 1025, "1025 bytes"), ("é" * 513, "1026 bytes"), ("photo\ud800.jpg", "not valid Unicode")],
)
def test_keys_no_store_can_hold_are_refused(key: str, why: str) -> None:
    with pytest.raises(ResultKeyError, match=why):
        check_object_key(key)


def test_model_names_that_would_not_fit_are_refused() -> None:
    with pytest.raises(ResultKeyError, match="longer"):
        result_key("", "images", "a.jpg", "e", "m" * 200, "1")

"""Request decoding and response encoding of every predict payload format (no model, no fdk)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fnvision_common import oip as wire
from predict_core import codecs
from predict_core.codecs import oip
from predict_core.codecs.base import Answer, Label, Source
from predict_core.errors import (
    DTypeError,
    EmptyBodyError,
    InvalidParameterError,
    RequestError,
    ShapeError,
    UnknownPayloadError,
    ValueRangeError,
)

RNG = np.random.default_rng(7)
IMAGES_U8 = RNG.integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
IMAGES_F32 = IMAGES_U8.astype(np.float32) + 0.5


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def oip_binary(array: np.ndarray, datatype: str, params: dict | None = None, outputs=None) -> tuple[bytes, dict]:
    raw = array.tobytes()
    header = {
        "inputs": [
            {
                "name": "images",
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": params or {},
    }
    if outputs is not None:
        header["outputs"] = outputs
    body, head_len = wire.join(header, [raw])
    return body, {"inference-header-content-length": str(head_len)}


def answer(n: int = 2, k: int = 2) -> Answer:
    rows = [[Label(10 + i + j, f"label {i}-{j}", 0.5 - 0.1 * j) for j in range(k)] for i in range(n)]
    return Answer(
        model={"name": "m", "version": "1", "digest": "sha256:ab", "engine": "litert"},
        top_k=rows,
        results=[None] * n,
        timings={"decode_ms": 1.0, "inference_ms": 2.0},
        cold_start=False,
        call_id="CALL",
    )


# -- detection order ---------------------------------------------------------------------------


def test_empty_body_is_its_own_error() -> None:
    with pytest.raises(EmptyBodyError):
        codecs.decode(b"", {"content-type": "application/json"})


def test_binary_header_wins_over_content_type() -> None:
    body, headers = oip_binary(IMAGES_U8, "UINT8")
    req = codecs.decode(body, {**headers, "content-type": "application/json"})
    assert req.fmt == "oip_binary"
    np.testing.assert_array_equal(req.images, IMAGES_U8)


@pytest.mark.parametrize("content_type", ["application/x-npy", "application/octet-stream", ""])
def test_npy_by_content_type_or_magic(content_type: str) -> None:
    req = codecs.decode(npy_bytes(IMAGES_F32), {"content-type": content_type})
    assert req.fmt == "npy" and req.images.dtype == np.float32
    np.testing.assert_array_equal(req.images, IMAGES_F32)


@pytest.mark.parametrize(
    ("doc", "fmt"),
    [
        ({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}, "oip"),
        ({"instances": [[[1.0]]]}, "tfs_row"),
        ({"inputs": [[[1.0]]]}, "tfs_columnar"),
        ({"inputs": {"images": [[[1.0]]]}}, "tfs_columnar"),
        ({"input_data": [{"values": [[[1.0]]]}]}, "wml"),
    ],
)
def test_json_formats_by_key(doc: dict, fmt: str) -> None:
    assert codecs.decode(json.dumps(doc).encode(), {}).fmt == fmt


@pytest.mark.parametrize("body", [b"hello", b"\xff\xfe\x00", b"[1,2,3]", b'{"foo": 1}', b"null"])
def test_unknown_payload(body: bytes) -> None:
    with pytest.raises(UnknownPayloadError):
        codecs.decode(body, {"content-type": "application/json"})


def test_truncated_npy_is_a_request_error() -> None:
    with pytest.raises(RequestError):
        codecs.decode(npy_bytes(IMAGES_U8)[:200], {"content-type": "application/x-npy"})


def test_pickled_npy_is_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RequestError, match="npy"):
        codecs.decode(buf.getvalue(), {"content-type": "application/x-npy"})


# -- OIP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("array", "datatype"), [(IMAGES_U8, "UINT8"), (IMAGES_F32, "FP32")])
def test_oip_json_and_binary_round_trip(array: np.ndarray, datatype: str) -> None:
    doc = {
        "id": "r1",
        "inputs": [
            {
                "name": "images",
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.ravel().tolist(),
            }
        ],
        "parameters": {"top_k": 3, "sources": json.dumps([None, {"bucket": "b", "key": "k", "etag": '"e"'}])},
    }
    from_json = codecs.decode(json.dumps(doc).encode(), {})
    body, headers = oip_binary(array, datatype, doc["parameters"])
    from_binary = codecs.decode(body, headers)
    for req in (from_json, from_binary):
        assert req.images.dtype == array.dtype
        np.testing.assert_array_equal(req.images, array)
        assert req.top_k == 3
        assert req.sources is not None and req.sources[0] is None
        assert req.sources[1] == Source("b", "k", '"e"') and req.sources[1].recordable
    assert from_json.oip is not None and from_json.oip.request_id == "r1"


def test_oip_binary_size_mismatch() -> None:
    body, headers = oip_binary(IMAGES_U8, "UINT8")
    with pytest.raises(ShapeError, match="needs"):
        codecs.decode(body[:-1], headers)


def test_oip_binary_header_length_beyond_body() -> None:
    with pytest.raises(RequestError):
        codecs.decode(b"{}", {"inference-header-content-length": "99"})


@pytest.mark.parametrize("datatype", ["INT64", "FP64", "BYTES", None])
def test_oip_unsupported_datatype(datatype: str | None) -> None:
    doc = {"inputs": [{"name": "images", "shape": [1], "datatype": datatype, "data": [1]}]}
    with pytest.raises(DTypeError):
        codecs.decode(json.dumps(doc).encode(), {})


def test_oip_data_count_must_match_shape() -> None:
    doc = {"inputs": [{"name": "images", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}
    with pytest.raises(ShapeError):
        codecs.decode(json.dumps(doc).encode(), {})


def test_oip_uint8_out_of_range_value() -> None:
    doc = {"inputs": [{"name": "images", "shape": [2], "datatype": "UINT8", "data": [1, 300]}]}
    with pytest.raises(ValueRangeError):
        codecs.decode(json.dumps(doc).encode(), {})


def test_oip_two_inputs_refused() -> None:
    t = {"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}
    with pytest.raises(RequestError, match="one input"):
        codecs.decode(json.dumps({"inputs": [t, t]}).encode(), {})


def test_oip_unknown_output_refused() -> None:
    body, headers = oip_binary(IMAGES_U8, "UINT8", outputs=[{"name": "logits"}])
    with pytest.raises(InvalidParameterError, match="logits"):
        codecs.decode(body, headers)


@pytest.mark.parametrize("bad", [{"top_k": "3"}, {"top_k": 2.5}, {"top_k": True}, {"sources": "not json"}])
def test_oip_bad_parameters(bad: dict) -> None:
    body, headers = oip_binary(IMAGES_U8, "UINT8", bad)
    with pytest.raises(InvalidParameterError):
        codecs.decode(body, headers)


def _parse_binary_response(encoded: codecs.Encoded) -> tuple[dict, dict[str, bytes]]:
    head, tail = wire.split(encoded.body, encoded.headers["Inference-Header-Content-Length"])
    doc = json.loads(head)
    return doc, {name: bytes(raw) for name, raw in wire.binary_tensors(doc["outputs"], tail).items()}


def test_oip_response_json_outputs() -> None:
    req = codecs.decode(
        json.dumps({"id": "x", "inputs": [{"name": "i", "shape": [1], "datatype": "FP32", "data": [1]}]}).encode(),
        {},
    )
    enc = codecs.encode(answer(), req)
    doc = json.loads(enc.body)
    assert enc.headers["Content-Type"] == "application/json"
    assert doc["id"] == "x" and doc["model_name"] == "m" and doc["model_version"] == "1"
    outs = {o["name"]: o for o in doc["outputs"]}
    assert outs["top_k_indices"] == {
        "name": "top_k_indices",
        "datatype": "INT32",
        "shape": [2, 2],
        "data": [10, 11, 11, 12],
    }
    assert outs["top_k_labels"]["data"][1] == "label 0-1"
    native = json.loads(doc["parameters"]["fnvision"])
    assert native["call_id"] == "CALL" and doc["parameters"]["engine"] == "litert"


def test_oip_response_binary_outputs_decode_like_triton() -> None:
    body, headers = oip_binary(IMAGES_U8, "UINT8", {"binary_data_output": True})
    enc = codecs.encode(answer(), codecs.decode(body, headers))
    head, blobs = _parse_binary_response(enc)
    assert [o["name"] for o in head["outputs"]] == list(oip.OUTPUT_NAMES)
    np.testing.assert_array_equal(np.frombuffer(blobs["top_k_indices"], "<i4").reshape(2, 2), [[10, 11], [11, 12]])
    np.testing.assert_allclose(np.frombuffer(blobs["top_k_scores"], "<f4"), [0.5, 0.4, 0.5, 0.4], rtol=1e-6)
    labels = [raw.decode() for raw in wire.unpack_bytes(blobs["top_k_labels"])]  # the layout: test_common_oip.py
    assert labels == ["label 0-0", "label 0-1", "label 1-0", "label 1-1"]


def test_oip_requested_outputs_mixed_binary_and_order() -> None:
    outputs = [
        {"name": "top_k_labels", "parameters": {"binary_data": False}},
        {"name": "top_k_scores", "parameters": {"binary_data": True}},
    ]
    body, headers = oip_binary(IMAGES_U8, "UINT8", outputs=outputs)
    head, blobs = _parse_binary_response(codecs.encode(answer(), codecs.decode(body, headers)))
    assert [o["name"] for o in head["outputs"]] == ["top_k_labels", "top_k_scores"]
    assert head["outputs"][0]["data"][0] == "label 0-0" and set(blobs) == {"top_k_scores"}


# -- TF Serving / WML ----------------------------------------------------------------------------


def test_tfserving_row_named_and_plain_instances() -> None:
    plain = {"instances": IMAGES_U8.tolist(), "top_k": 2}
    named = {"instances": [{"images": im} for im in IMAGES_U8.tolist()], "sources": [None, None]}
    for doc in (plain, named):
        req = codecs.decode(json.dumps(doc).encode(), {"content-type": "application/json"})
        np.testing.assert_array_equal(req.images, IMAGES_U8.astype(np.float32))
    enc = codecs.encode(answer(), req)
    doc = json.loads(enc.body)
    assert doc["predictions"][1] == {
        "top_k_indices": [11, 12],
        "top_k_scores": [0.5, 0.4],
        "top_k_labels": ["label 1-0", "label 1-1"],
    }
    assert doc["fnvision"]["model"]["name"] == "m"


def test_tfserving_columnar_answer() -> None:
    req = codecs.decode(json.dumps({"inputs": {"images": IMAGES_F32.tolist()}}).encode(), {})
    doc = json.loads(codecs.encode(answer(), req).body)
    assert doc["outputs"]["top_k_indices"] == [[10, 11], [11, 12]]


def test_tfserving_ragged_instances_are_shape_errors() -> None:
    with pytest.raises(ShapeError):
        codecs.decode(json.dumps({"instances": [[1, 2], [3]]}).encode(), {})


def test_tfserving_strings_are_dtype_errors() -> None:
    with pytest.raises(DTypeError):
        codecs.decode(json.dumps({"instances": [["a", "b"]]}).encode(), {})


@pytest.mark.parametrize("rows", ["batch", "one_field_rows"])
def test_wml_values(rows: str) -> None:
    values = IMAGES_U8.tolist() if rows == "batch" else [[im] for im in IMAGES_U8.tolist()]
    doc = {"input_data": [{"fields": ["image"], "values": values}], "top_k": 2}
    req = codecs.decode(json.dumps(doc).encode(), {})
    assert req.images.shape == IMAGES_U8.shape and req.top_k == 2
    out = json.loads(codecs.encode(answer(), req).body)
    assert out["predictions"][0]["id"] == "top_k"
    assert out["predictions"][0]["fields"] == ["index", "label", "score"]
    assert out["predictions"][0]["values"][1][0] == [11, "label 1-0", 0.5]


def test_wml_needs_values() -> None:
    with pytest.raises(RequestError):
        codecs.decode(json.dumps({"input_data": [{"fields": ["x"]}]}).encode(), {})


@pytest.mark.parametrize(
    "sources", [{"a": 1}, [1], [{"bucket": 1, "key": "k", "etag": "e"}], [{"bucket": "b", "metadata": []}]]
)
def test_bad_sources(sources: object) -> None:
    with pytest.raises(InvalidParameterError):
        codecs.decode(json.dumps({"instances": [[1.0]], "sources": sources}).encode(), {})


@pytest.mark.parametrize(("etag", "recordable"), [('"abc"', True), ('""', False), ("", False)])
def test_source_recordable_needs_a_real_etag(etag: str, recordable: bool) -> None:
    assert Source("b", "k", etag).recordable is recordable


def test_json_over_the_limit_is_refused_before_parsing() -> None:
    from predict_core.errors import PayloadTooLargeError

    body = json.dumps({"instances": IMAGES_U8.tolist()}).encode()
    with pytest.raises(PayloadTooLargeError, match="npy"):
        codecs.decode(body, {"content-type": "application/json"}, max_json_bytes=len(body) - 1)
    assert codecs.decode(body, {}, max_json_bytes=len(body)).fmt == "tfs_row"
    big_npy = npy_bytes(np.zeros((8, 4, 4, 3), np.uint8))
    assert codecs.decode(big_npy, {}, max_json_bytes=10).fmt == "npy"  # binary formats are exempt

"""The OIP v2 binary layout both functions use (fnvision_common.oip): pinned bytes, and each side
reading what the other writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fnvision_common import oip
from predict_core import codecs
from preprocess_core.predict_client import parse_answer

from tests.unit.test_predict_codecs import answer


def test_bytes_tensor_is_triton_s_layout() -> None:
    # <uint32 little-endian length><UTF-8 bytes> per element, row-major, nothing between them
    packed = oip.pack("BYTES", [["ab", "é"], ["", "c"]])
    assert packed == b"\x02\x00\x00\x00ab" + b"\x02\x00\x00\x00\xc3\xa9" + b"\x00\x00\x00\x00" + b"\x01\x00\x00\x00c"
    assert oip.unpack_bytes(packed) == [b"ab", "é".encode(), b"", b"c"]
    assert oip.unpack("BYTES", packed, [2, 2])[1, 1] == b"c"


def test_numbers_are_little_endian_whatever_the_host() -> None:
    assert oip.pack("INT32", [[1, 256]]) == b"\x01\x00\x00\x00\x00\x01\x00\x00"
    assert oip.pack("FP32", [0.5]) == b"\x00\x00\x00\x3f"
    np.testing.assert_array_equal(oip.unpack("INT32", b"\x01\x00\x00\x00\x00\x01\x00\x00", [1, 2]), [[1, 256]])


@pytest.mark.parametrize(
    ("raw", "datatype", "shape"),
    [
        (b"\x05\x00\x00\x00abc", "BYTES", [1]),  # an element runs past the end
        (b"\x01\x00", "BYTES", [1]),  # a length cut off
        (b"\x01\x00\x00", "INT32", [1]),  # not a whole number of values
        (b"\x01\x00\x00\x00", "INT32", [2]),  # too few values for the shape
        (b"\x01", "BOOL", [1]),  # no binary form here
    ],
)
def test_bad_raw_tensors_are_layout_errors(raw: bytes, datatype: str, shape: list[int]) -> None:
    with pytest.raises(oip.LayoutError):
        oip.unpack(datatype, raw, shape)


def test_request_layout_is_header_then_tensor() -> None:
    batch = np.arange(2 * 1 * 1 * 3, dtype=np.uint8).reshape(2, 1, 1, 3)
    body, head_len = oip.encode_request(batch, [{"key": "k é"}, None], input_name="images", top_k=3)
    assert body[:head_len] == (
        '{"inputs":[{"name":"images","shape":[2,1,1,3],"datatype":"UINT8","parameters":{"binary_data_size":6}}],'
        '"parameters":{"top_k":3,"sources":"[{\\"key\\":\\"k é\\"},null]"}}'
    ).encode()
    assert body[head_len:] == bytes(range(6))


def test_request_refuses_what_is_not_a_uint8_batch() -> None:
    with pytest.raises(ValueError, match="uint8"):
        oip.encode_request(np.zeros((1, 2, 2, 3), np.float32), [None], input_name="images", top_k=1)


def test_predict_decodes_what_preprocess_encodes() -> None:
    batch = np.random.default_rng(3).integers(0, 256, size=(3, 4, 4, 3), dtype=np.uint8)
    sources = [{"bucket": "b", "key": "in/ü.jpg", "etag": "e", "metadata": {"exif": {"make": "Ç"}}}, None, {}]
    body, head_len = oip.encode_request(batch, sources, input_name="images", top_k=4)
    request = codecs.decode(body, {oip.HEADER_LENGTH.lower(): str(head_len)})
    np.testing.assert_array_equal(request.images, batch)
    assert request.fmt == "oip_binary" and request.top_k == 4 and request.sources is not None
    first = request.sources[0]
    assert first is not None and (first.bucket, first.key, first.etag) == ("b", "in/ü.jpg", "e")
    assert dict(first.metadata) == {"exif": {"make": "Ç"}} and request.sources[1] is None


@pytest.mark.parametrize("binary", [False, True])
def test_preprocess_reads_what_predict_answers(binary: bool) -> None:
    header = {"inputs": [{"name": "images", "shape": [1], "datatype": "UINT8", "parameters": {"binary_data_size": 1}}]}
    if binary:
        header["parameters"] = {"binary_data_output": True}
    body, head_len = oip.join(header, [b"\x00"])
    encoded = codecs.encode(answer(), codecs.decode(body, {oip.HEADER_LENGTH.lower(): str(head_len)}))
    native = parse_answer(encoded.body, encoded.headers.get(oip.HEADER_LENGTH))
    assert native == answer().native()


def test_binary_outputs_slice_the_tail_in_header_order() -> None:
    outputs = [
        {"name": "a", "parameters": {"binary_data_size": 2}},
        {"name": "json", "data": [1]},
        {"name": "b", "parameters": {"binary_data_size": 1}},
    ]
    body, head_len = oip.join({"outputs": outputs}, [b"AA", b"B"])
    head, tail = oip.split(body, str(head_len))
    assert json.loads(head)["outputs"] == outputs
    assert {name: bytes(raw) for name, raw in oip.binary_tensors(outputs, tail).items()} == {"a": b"AA", "b": b"B"}
    with pytest.raises(oip.LayoutError, match="follow"):
        oip.binary_tensors(outputs[:1], tail)
    with pytest.raises(oip.LayoutError, match="does not fit"):
        oip.binary_tensors([{"name": "a", "parameters": {"binary_data_size": 4}}], tail)


@pytest.mark.parametrize("length", ["x", "0", "-1", "999"])
def test_header_length_must_name_a_header_inside_the_body(length: str) -> None:
    with pytest.raises(oip.LayoutError):
        oip.split(b"{}rest", length)


def test_answer_without_binary_outputs_is_plain_json() -> None:
    assert oip.encode_answer({"a": "é"}, []) == ('{"a":"é"}'.encode(), {"Content-Type": "application/json"})
    body, headers = oip.encode_answer({"a": 1}, [b"xy"])
    assert body == b'{"a":1}xy'
    assert headers == {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "7"}

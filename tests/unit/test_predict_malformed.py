"""Malformed requests: every one is a client error with a stable code, never 500 internal_error.

A 500 goes out as 502 on /invoke, so Fn records a failed call and an event source retries the same
broken request forever; these bodies must all answer 4xx (sent as 200 with the error body).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fnvision_common import oip as wire
from predict_core import codecs, service
from predict_core.codecs.base import MAX_METADATA_DEPTH
from predict_core.errors import DTypeError, RequestError, ValueRangeError
from predict_core.manifest import parse as parse_manifest
from predict_core.model import LoadedModel
from predict_core.settings import Settings

from tests.data.stores import MemoryResultStore

H, W, C = 4, 4, 3
LABELS = tuple(f"class {i}" for i in range(6))
MANIFEST = {
    "name": "tiny",
    "version": "1",
    "digest": "sha256:00",
    "input": {"shape": [None, H, W, C], "layout": "NHWC"},
    "labels": {"path": "labels.json", "sha256": "00"},
    "artifacts": {"tflite": {"path": "m.tflite", "sha256": "00"}},
}
IMAGE = np.zeros((1, H, W, C), np.uint8)
FLAT = IMAGE.ravel().tolist()
DEEP = 100_000  # far beyond the interpreter's recursion limit


class _Engine:
    name = "litert"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        probs = np.zeros((batch.shape[0], len(LABELS)), np.float32)
        probs[:, 0] = 1.0
        return probs


def _deps() -> service.Deps:
    model = LoadedModel(parse_manifest(json.dumps(MANIFEST)), LABELS, _Engine(), "mem://", 1.0)
    return service.Deps(Settings.from_env({}, "/x"), lambda: (model, False), MemoryResultStore)


def _code(reply: service.Reply) -> str:
    """The error code of a reply, from its body (what a caller reads)."""
    return str(json.loads(reply.body)["error"]["code"])


def _oip(tensor: dict[str, Any] | None = None, **doc: Any) -> dict[str, Any]:
    base = {"name": "images", "shape": [1, H, W, C], "datatype": "UINT8", "data": FLAT}
    return {"inputs": [{**base, **(tensor or {})}], **doc}


def _binary(header: dict[str, Any], tail: bytes = IMAGE.tobytes()) -> tuple[bytes, dict[str, str]]:
    body, head_len = wire.join(header, [tail])
    return body, {"inference-header-content-length": str(head_len)}


def _oip_bin(tensor_params: Any = None, **doc: Any) -> tuple[bytes, dict[str, str]]:
    params = {"binary_data_size": IMAGE.nbytes} if tensor_params is None else tensor_params
    tensor = {"name": "images", "shape": [1, H, W, C], "datatype": "UINT8", "parameters": params}
    return _binary({"inputs": [tensor], **doc})


def _nested(depth: int, leaf: str = "0") -> str:
    return "[" * depth + leaf + "]" * depth


JSON_CASES: dict[str, tuple[Any, str, int]] = {
    # OIP v2 JSON: every level of the request shape
    "oip_parameters_string": (_oip(parameters="top_k=3"), "invalid_parameter", 400),
    "oip_parameters_list": (_oip(parameters=[1]), "invalid_parameter", 400),
    "oip_output_not_object": (_oip(outputs=["top_k_scores"]), "invalid_parameter", 400),
    "oip_output_name_list": (_oip(outputs=[{"name": ["top_k_scores"]}]), "invalid_parameter", 400),
    "oip_output_parameters_string": (
        _oip(outputs=[{"name": "top_k_scores", "parameters": "binary_data"}]),
        "invalid_parameter",
        400,
    ),
    "oip_output_parameters_list": (
        _oip(outputs=[{"name": "top_k_scores", "parameters": ["classification"]}]),
        "invalid_parameter",
        400,
    ),
    "oip_output_binary_data_string": (
        _oip(outputs=[{"name": "top_k_scores", "parameters": {"binary_data": "false"}}]),
        "invalid_parameter",
        400,
    ),
    "oip_binary_data_output_string": (_oip(parameters={"binary_data_output": "yes"}), "invalid_parameter", 400),
    "oip_outputs_object": (_oip(outputs={"name": "top_k_scores"}), "invalid_parameter", 400),
    "oip_id_object": (_oip(id={"a": 1}), "invalid_payload", 400),
    "oip_name_number": (_oip({"name": 7}), "invalid_payload", 400),
    "oip_datatype_list": (_oip({"datatype": ["UINT8"]}), "invalid_dtype", 422),
    "oip_datatype_object": (_oip({"datatype": {"UINT8": 1}}), "invalid_dtype", 422),
    "oip_shape_string": (_oip({"shape": "1,4,4,3"}), "invalid_shape", 422),
    "oip_shape_bool": (_oip({"shape": [True, H, W, C]}), "invalid_shape", 422),
    "oip_shape_float": (_oip({"shape": [1.0, H, W, C]}), "invalid_shape", 422),
    "oip_shape_too_many_dims": (_oip({"shape": [1] * 70, "data": [0]}), "invalid_shape", 422),
    "oip_shape_huge_zero_size": (_oip({"shape": [0, 2**70], "data": []}), "invalid_shape", 422),
    "oip_tensor_parameters_string": (_oip({"parameters": "binary"}), "invalid_payload", 400),
    "oip_data_object": (_oip({"data": {"0": 1}}), "invalid_payload", 400),
    "oip_data_string": (_oip({"data": "0" * len(FLAT)}), "invalid_payload", 400),
    "oip_data_numeric_strings": (_oip({"data": ["1"] * len(FLAT)}), "invalid_dtype", 422),
    "oip_data_booleans": (_oip({"data": [True] * len(FLAT)}), "invalid_dtype", 422),
    "oip_data_nulls": (_oip({"data": [None] * len(FLAT)}), "invalid_dtype", 422),
    "oip_data_objects": (_oip({"data": [{}] * len(FLAT)}), "invalid_dtype", 422),
    "oip_uint8_fraction": (_oip({"data": [0.5] * len(FLAT)}), "invalid_value", 422),
    "oip_uint8_negative": (_oip({"data": [-1] * len(FLAT)}), "invalid_value", 422),
    "oip_uint8_beyond_64_bits": (_oip({"data": [2**70] * len(FLAT)}), "invalid_value", 422),
    "oip_top_k_string": (_oip(parameters={"top_k": "3"}), "invalid_parameter", 400),
    "oip_sources_object": (_oip(parameters={"sources": {"bucket": "b"}}), "invalid_parameter", 400),
    "oip_sources_deep_string": (_oip(parameters={"sources": _nested(DEEP)}), "invalid_parameter", 400),
    # TF Serving
    "tfs_instances_numeric_strings": ({"instances": [[["1"] * C] * W] * H}, "invalid_dtype", 422),
    "tfs_instances_booleans": ({"instances": [[[True] * C] * W] * H}, "invalid_dtype", 422),
    "tfs_instances_nulls": ({"instances": [[[None] * C] * W] * H}, "invalid_dtype", 422),
    "tfs_instances_object": ({"instances": {"images": [0]}}, "invalid_payload", 400),
    "tfs_instances_two_named_inputs": ({"instances": [{"a": [0], "b": [0]}]}, "invalid_payload", 400),
    "tfs_instances_ragged": ({"instances": [[0, 0], [0]]}, "invalid_shape", 422),
    "tfs_instances_string": ({"instances": "abc"}, "invalid_payload", 400),
    "tfs_inputs_string": ({"inputs": "0"}, "invalid_dtype", 422),
    "tfs_inputs_null": ({"inputs": None}, "invalid_dtype", 422),
    "tfs_inputs_mixed_list": ({"inputs": [{"name": "images"}, [0]]}, "invalid_shape", 422),
    "tfs_top_k_infinity": ({"instances": IMAGE.tolist(), "top_k": float("inf")}, "invalid_parameter", 400),
    "tfs_top_k_nan": ({"instances": IMAGE.tolist(), "top_k": float("nan")}, "invalid_parameter", 400),
    "tfs_top_k_list": ({"instances": IMAGE.tolist(), "top_k": [3]}, "invalid_parameter", 400),
    "tfs_sources_string_list": ({"instances": IMAGE.tolist(), "sources": "[1]"}, "invalid_parameter", 400),
    "tfs_metadata_too_deep": (
        {"instances": IMAGE.tolist(), "sources": [{"metadata": json.loads(_nested(MAX_METADATA_DEPTH + 1))}]},
        "invalid_parameter",
        400,
    ),
    "tfs_float_beyond_float32": ({"instances": (IMAGE + 1e300).tolist()}, "invalid_value", 422),
    # DAS / WML
    "wml_input_data_object": ({"input_data": {"values": [0]}}, "invalid_payload", 400),
    "wml_input_data_entry_list": ({"input_data": [[0]]}, "invalid_payload", 400),
    "wml_fields_string": ({"input_data": [{"fields": "image", "values": IMAGE.tolist()}]}, "invalid_payload", 400),
    "wml_values_strings": ({"input_data": [{"values": [[["1"] * C] * W] * H}]}, "invalid_dtype", 422),
    "wml_values_object": ({"input_data": [{"values": {"a": 1}}]}, "invalid_dtype", 422),
}


@pytest.mark.parametrize(("doc", "code", "status"), JSON_CASES.values(), ids=JSON_CASES.keys())
def test_malformed_json_is_a_client_error(doc: Any, code: str, status: int) -> None:
    reply = service.predict(json.dumps(doc).encode(), {"content-type": "application/json"}, "C", _deps())
    assert (reply.status, _code(reply)) == (status, code), reply.body


RAW_CASES: dict[str, tuple[bytes, dict[str, str], str, int]] = {
    # a long top-level array is not parsed (leanjson keeps it as text): it is simply not an object
    "deep_array": (_nested(DEEP).encode(), {}, "unknown_payload", 400),
    "deep_object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, {}, "invalid_payload", 400),
    "deep_inside_instances": (b'{"instances": ' + _nested(DEEP).encode() + b"}", {}, "invalid_payload", 400),
    "nested_beyond_numpy_dims": (b'{"instances": ' + _nested(200).encode() + b"}", {}, "invalid_shape", 422),
    "binary_header_deep": (
        _nested(DEEP).encode() + IMAGE.tobytes(),
        {"inference-header-content-length": str(2 * DEEP + 1)},
        "invalid_payload",
        400,
    ),
    "binary_header_not_json": (
        b"{nope" + IMAGE.tobytes(),
        {"inference-header-content-length": "5"},
        "invalid_payload",
        400,
    ),
    "binary_header_array": (b"[1]" + IMAGE.tobytes(), {"inference-header-content-length": "3"}, "invalid_payload", 400),
    "binary_size_string": (*_oip_bin({"binary_data_size": str(IMAGE.nbytes)}), "invalid_payload", 400),
    "binary_size_bool": (*_oip_bin({"binary_data_size": True}), "invalid_payload", 400),
    "binary_size_float": (*_oip_bin({"binary_data_size": float(IMAGE.nbytes)}), "invalid_payload", 400),
    "binary_tensor_parameters_list": (*_oip_bin([IMAGE.nbytes]), "invalid_payload", 400),
    "binary_parameters_string": (*_oip_bin(parameters="{}"), "invalid_parameter", 400),
    "binary_output_parameters_string": (
        *_oip_bin(outputs=[{"name": "top_k_labels", "parameters": "x"}]),
        "invalid_parameter",
        400,
    ),
    "binary_huge_shape_wraps_around": (
        *_binary(
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [2**32, 2**32],
                        "datatype": "UINT8",
                        "parameters": {"binary_data_size": 0},
                    }
                ]
            },
            b"",
        ),
        "invalid_shape",
        422,
    ),
}


@pytest.mark.parametrize(("body", "headers", "code", "status"), RAW_CASES.values(), ids=RAW_CASES.keys())
def test_malformed_bodies_are_client_errors(body: bytes, headers: dict[str, str], code: str, status: int) -> None:
    reply = service.predict(body, headers, "C", _deps())
    assert (reply.status, _code(reply)) == (status, code), reply.body


def test_a_well_formed_request_still_answers() -> None:
    """The cases above differ from this one in one field each."""
    for body, headers in (
        (json.dumps(_oip()).encode(), {}),
        _oip_bin(),
        (json.dumps({"instances": IMAGE.tolist()}).encode(), {}),
    ):
        reply = service.predict(body, headers, "C", _deps())
        assert reply.status == 200, reply.body


# -- JSON tensors hold numbers, nothing else ------------------------------------------------------------


@pytest.mark.parametrize("value", [["1", "2"], [["1"]], ["1.5"], [True, False], [None], [[1], [None]], "12"])
def test_json_tensor_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(DTypeError, match="numbers"):
        codecs.decode(json.dumps({"inputs": value}).encode(), {})


def test_json_tensor_keeps_numbers_exactly() -> None:
    req = codecs.decode(json.dumps({"instances": [[0, 1.5], [254, 255]]}).encode(), {})
    assert req.images.dtype == np.float32
    np.testing.assert_array_equal(req.images, [[0, 1.5], [254, 255]])


def test_oip_uint8_accepts_integral_floats() -> None:
    req = codecs.decode(json.dumps(_oip({"data": [float(v) for v in FLAT]})).encode(), {})
    assert req.images.dtype == np.uint8 and req.images.shape == (1, H, W, C)


@pytest.mark.parametrize("data", [[256], [-1], [1.5], [float("nan")]])
def test_oip_uint8_values_must_be_bytes(data: list[float]) -> None:
    doc = {"inputs": [{"name": "images", "shape": [1], "datatype": "UINT8", "data": data}]}
    with pytest.raises(ValueRangeError):
        codecs.decode(json.dumps(doc).encode(), {})


def test_every_malformed_case_raises_a_request_error_from_the_decoder() -> None:
    """The codec layer itself refuses them (the service adds nothing but the status mapping)."""
    for doc, _, _ in JSON_CASES.values():
        try:
            req = codecs.decode(json.dumps(doc).encode(), {})
        except RequestError:
            continue
        # a few cases decode and fail later on the model's shape/range (still a RequestError)
        assert req.images.size == 0 or req.images.shape[-3:] == (H, W, C), doc

"""leanjson: the same documents and arrays as json.loads + np.asarray, without the tensor as Python objects.

The piece size and the tensor threshold are shrunk here so that every cutting case (pieces of many
elements, one element longer than a piece, recursion into it) happens on small arrays.
"""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest
from predict_core.codecs import leanjson
from predict_core.codecs.leanjson import InvalidJsonError, JsonTensor, MixedArrayError, RaggedError, TooManyValuesError


def _as_float(piece: Any) -> np.ndarray:
    array = np.asarray(piece)
    assert array.dtype.kind in "iuf", array.dtype
    return array.astype(np.float64)


def _spaced(value: Any, rng: random.Random) -> str:
    """JSON text of value with random whitespace around every token."""
    ws = lambda: rng.choice(["", "", " ", "\n", " \t", "\r\n  "])  # noqa: E731
    if isinstance(value, list):
        return ws() + "[" + ",".join(_spaced(v, rng) for v in value) + "]" + ws()
    return ws() + json.dumps(value) + ws()


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leanjson, "PIECE_CHARS", 64)
    monkeypatch.setattr(leanjson, "TENSOR_MIN_CHARS", 16)


@pytest.mark.parametrize("seed", range(40))
def test_random_tensors_parse_like_numpy(small: None, seed: int) -> None:
    rng = random.Random(seed)
    shape = [rng.randint(1, 6) for _ in range(rng.randint(1, 5))]
    values = np.random.default_rng(seed).integers(-300, 300, shape)
    nested: Any = values.tolist()
    if seed % 3 == 1:
        nested = (values / 7).tolist()  # floats
    elif seed % 3 == 2:
        nested = [f * 1e-3 if i % 2 else int(f) for i, f in enumerate(values.ravel().tolist())]  # flat, mixed
    text = '{"a": "x[1,2]", "t": ' + _spaced(nested, rng) + ', "z": [1, 2]}'
    doc = leanjson.loads(text.encode())
    expected = np.asarray(json.loads(text)["t"], dtype=np.float64)
    tensor = doc["t"]
    if isinstance(tensor, list):  # shorter than TENSOR_MIN_CHARS: plain JSON
        assert values.size < 8
        np.testing.assert_array_equal(np.asarray(tensor, dtype=np.float64), expected)
    else:
        np.testing.assert_array_equal(tensor.to_array(_as_float), expected)
    assert doc["a"] == "x[1,2]" and doc["z"] == [1, 2]


def test_a_batch_of_images_in_real_sizes() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    for data in (images.tolist(), images.ravel().tolist(), [images.tolist()]):
        body = json.dumps({"inputs": [{"name": "images", "data": data, "shape": [3, 224, 224, 3]}]}).encode()
        tensor = leanjson.loads(body)["inputs"][0]["data"]
        assert isinstance(tensor, JsonTensor)
        array = tensor.to_array(lambda piece: np.asarray(piece).astype(np.uint8))
        np.testing.assert_array_equal(array.reshape(images.shape), images)


def test_the_document_around_tensors_is_json(small: None) -> None:
    text = '\ufeff{"k": ["é", {"n": null, "b": [true, false]}, -1.5e3, "\\u00e9\\n"], "k": 2, "e": {}, "l": []}'
    assert leanjson.loads(text.encode("utf-8")) == {"k": 2, "e": {}, "l": []}
    text = '{"k": ["é", {"n": null, "b": [true, false]}, -1.5e3, "\\u00e9\\n"], "nan": NaN}'
    doc = leanjson.loads(text.encode("utf-16"))
    assert doc["k"] == json.loads(text)["k"] and np.isnan(doc["nan"])
    text = r'{"a\"b": "c\\", "d": "\"[1,2]\"", "e": "\\\"", "f": -0.5e-3, "g": [[], {}, [""]], "h": 1e999}'
    assert leanjson.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"a": 1,}',
        '{"a" 1}',
        "{'a': 1}",
        '{"a": [1, 2,]}',
        '{"a": 1} x',
        '{"a": tru}',
        "[" + "1," * 20 + "]",  # a trailing comma in a tensor
        "[" + "1," * 10 + ",1" * 10 + "]",  # an empty element
        "[" + "1 " * 20 + "]",  # no commas
        "[" + "1," * 20 + "1",  # never closed
        "[" + "1," * 20 + "1] x",
        "[[" + "1," * 20 + "1]",
    ],
)
def test_invalid_json_is_refused(small: None, text: str) -> None:
    with pytest.raises(InvalidJsonError):
        value = leanjson.loads(text.encode())
        if isinstance(value, JsonTensor):
            value.to_array(_as_float)


@pytest.mark.parametrize(
    ("tail", "found"),
    [('"a"]', "strings"), ("true]", "booleans"), ("null]", "null"), ("{}]", "objects"), ("NaN]", "NaN")],
)
def test_a_long_run_of_numbers_then_something_else_is_refused(small: None, tail: str, found: str) -> None:
    with pytest.raises(MixedArrayError) as info:
        leanjson.loads(("[" + "1," * 30 + tail).encode())
    assert info.value.found == found


def test_short_mixed_arrays_are_plain_json(small: None) -> None:
    assert leanjson.loads(b'[1, "a", true, null, {"b": [2]}]') == [1, "a", True, None, {"b": [2]}]


@pytest.mark.parametrize(
    "nested",
    [
        [[1, 2, 3]] * 10 + [[1, 2]],
        [[1, 2]] * 10 + [1],
        [[[1] * 30], [[1] * 30], [1] * 30],
        [[1] * 40, [[1] * 40]],
    ],
)
def test_ragged_tensors_are_refused(small: None, nested: Any) -> None:
    tensor = leanjson.loads(json.dumps(nested).encode())
    assert isinstance(tensor, JsonTensor)
    with pytest.raises((RaggedError, ValueError)):
        tensor.to_array(_as_float)


def test_the_skeleton_has_a_value_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leanjson, "MAX_SKELETON_VALUES", 100)
    assert len(leanjson.loads(json.dumps({"a": list(range(90))}).encode())["a"]) == 90
    for doc in ({"a": list(range(200))}, {"a": [{}] * 200}, {"a": [[]] * 200}, {"a": ["x"] * 200}):
        with pytest.raises(TooManyValuesError):
            leanjson.loads(json.dumps(doc).encode())


def test_hostile_nesting_is_refused_cheaply(small: None) -> None:
    with pytest.raises(RecursionError):
        leanjson.loads(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    tensor = leanjson.loads(b"[" * 5000 + b"1" + b"]" * 5000)
    assert isinstance(tensor, JsonTensor)
    with pytest.raises((RaggedError, RecursionError)):
        tensor.to_array(_as_float)


def test_a_tensor_costs_about_its_output_not_its_python_objects() -> None:
    """An 8-image JSON tensor of floats (7 MB): json.loads + np.asarray peak at ~60 MB, leanjson at ~10."""
    values = np.round(np.random.default_rng(1).random((8, 224, 224, 3)) * 255, 1)
    body = json.dumps({"inputs": [{"data": values.ravel().tolist()}]}).encode()
    tracemalloc.start()
    try:
        doc = leanjson.loads(body)
        array = doc["inputs"][0]["data"].to_array(lambda piece: np.asarray(piece).astype(np.float32))
        _, lean_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        del doc
        reference = np.asarray(json.loads(body)["inputs"][0]["data"]).astype(np.float32)
        _, json_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(array, reference)
    # leanjson reads the body where it lies: the output array and one piece's objects (a few MB)
    assert lean_peak < array.nbytes + (8 << 20), (lean_peak, array.nbytes)
    assert json_peak > len(body) + 3 * lean_peak, (json_peak, lean_peak, len(body))


@pytest.mark.parametrize(
    "body",
    [
        b'["x", ' + b"[1]," * 1_000_000 + b"[1]]",  # a long numeric run made of small arrays
        b'["x", ' + (b"[" + b"1," * 10_000 + b"1],") * 200 + b"[1]]",  # many tensors in a row (4 MB)
        b'{"a": [' + b"1," * 2_000_000 + b'"x"]}',  # a long run of numbers, then a string
        b"[" * 3_000_000,  # never closed
    ],
    ids=["small_arrays", "many_tensors", "mixed", "unclosed"],
)
def test_hostile_bodies_cost_about_their_length(body: bytes) -> None:
    started = time.perf_counter()
    try:
        value = leanjson.loads(body)
    except (InvalidJsonError, TooManyValuesError, MixedArrayError, RecursionError):
        pass
    else:
        assert len(value) == 202  # many_tensors: the string, 200 tensors and [1]
        assert all(isinstance(v, JsonTensor) for v in value[1:-1])
    assert time.perf_counter() - started < 10  # a rescan per element would take minutes

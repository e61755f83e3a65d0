"""Parse a JSON body whose big numeric arrays (image tensors) stay text until they become numpy arrays.

``json.loads`` turns a 16 MiB JSON tensor into millions of Python numbers and lists: about 7 bytes of
RSS per body byte for integers, more for floats, ~40 for ``[[],[],...]``. Here:

* the body is read as bytes where it lies (no decoded copy of it; UTF-16/32 bodies are transcoded);
* the document around the tensors (the skeleton: keys, options, ``sources``...) is parsed value by
  value, every scalar by ``json.loads`` on its own bytes, and at most ``MAX_SKELETON_VALUES`` values
  are accepted (``payload_too_large`` beyond), so the skeleton's memory is bounded whatever the body;
* an array whose text starts with a run of at least ``TENSOR_MIN_CHARS`` numeric characters (digits,
  signs, ``.eE``, brackets, commas, whitespace) is a tensor: it becomes a ``JsonTensor`` (a reference
  to its text) and is turned into a numpy array of the dtype the request declares only when the
  decoder asks (``JsonTensor.to_array``), piece by piece: the text is cut between elements into pieces
  of about ``PIECE_CHARS`` characters, each piece is parsed by ``json.loads`` (so the JSON rules and the
  error cases are exactly json's) and converted, then copied into the output. Peak memory: the output
  array plus one piece's Python objects (a few MB), instead of the whole tensor as Python objects.

What differs from ``json.loads``: a numeric run of ``TENSOR_MIN_CHARS`` or more that does not close
the array (numbers followed by a string, ``true``, ``null``, an object, ``NaN``...) is refused at once
instead of being parsed (a tensor holds numbers only; see ``MixedArrayError``); and a nested tensor's
rows are checked for equal shapes piece by piece (same outcome as ``np.asarray``: ragged is refused).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

TENSOR_MIN_CHARS = 16 * 1024
"""An array whose text starts with this many numeric characters is a tensor (a 224x224x3 image is ~500 KB)."""
PIECE_CHARS = 256 * 1024
"""Text parsed by one ``json.loads`` call while a tensor is converted (its Python objects: a few MB)."""
MAX_SPLIT_DEPTH = 16
"""Nesting levels of arrays longer than PIECE_CHARS (an image batch has 2: the batch, then each image)."""
MAX_SKELETON_VALUES = 100_000
"""Values (scalars, arrays, objects) accepted outside tensors: ~10 MB of Python objects at most."""

_NUMERIC_CHARS = b"[]0123456789eE+-., \t\n\r"
_NUMERIC_RUN = re.compile(rb"[\[\]0-9eE+\-., \t\n\r]*")
_NUMERIC_BYTES = np.zeros(256, dtype=bool)
_NUMERIC_BYTES[list(_NUMERIC_CHARS)] = True
_WS = re.compile(rb"[ \t\n\r]*")
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = {
    b"true": True,
    b"false": False,
    b"null": None,
    b"NaN": float("nan"),
    b"Infinity": float("inf"),
    b"-Infinity": float("-inf"),
}
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE, _COMMA = ord("["), ord("]"), ord(",")
_MIXED = {
    b'"': "strings",
    b"t": "booleans",
    b"f": "booleans",
    b"n": "null",
    b"{": "objects",
    b"N": "NaN",
    b"I": "Infinity",
}


class InvalidJsonError(ValueError):
    """The body is not valid JSON (the caller answers unknown_payload)."""


class TooManyValuesError(ValueError):
    """More than MAX_SKELETON_VALUES values outside tensors (the caller answers payload_too_large)."""


class RaggedError(ValueError):
    """The nested lists of a tensor do not form a rectangular array."""


class MixedArrayError(ValueError):
    """A long run of numbers is followed, inside the same array, by something else (``found``)."""

    def __init__(self, message: str, found: str) -> None:
        super().__init__(message)
        self.found = found


@dataclass(frozen=True)
class JsonTensor:
    """A numeric JSON array kept as text: ``data[start:stop]`` is the array, brackets included."""

    data: bytes
    start: int
    stop: int

    @property
    def chars(self) -> int:
        """Length of the array's text."""
        return self.stop - self.start

    def to_array(self, convert: Callable[[Any], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """Parse the array piece by piece; ``convert`` turns each piece (nested lists) into an array.

        ``convert`` must return the same dtype for every piece (the request's declared dtype) and
        raise for values it refuses. Pieces whose element shapes differ raise RaggedError.
        """
        return _parse_span(self.data, self.start, self.stop, convert)


def loads(body: bytes) -> Any:
    """Parse a JSON body like ``json.loads``, with tensors as ``JsonTensor`` (see the module doc).

    Raises InvalidJsonError, TooManyValuesError, MixedArrayError or RecursionError (nesting too deep).
    """
    encoding = json.detect_encoding(body)
    start = 0
    if encoding == "utf-8-sig":
        start = 3
    elif encoding != "utf-8":  # UTF-16/32: rare; transcoded once
        try:
            body = body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
        except UnicodeError as exc:
            raise InvalidJsonError(f"the body is not {encoding} text: {exc}") from exc
    parser = _Skeleton(body)
    value, end = parser.value(start)
    if parser.skip(end) != len(body):
        raise InvalidJsonError(f"the body is not valid JSON: extra data at byte {parser.skip(end)}")
    return value


def _scalar(raw: bytes) -> Any:
    """One JSON string or number, read by json itself (escapes, control characters, int digits limit)."""
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits for int()
        raise InvalidJsonError(f"the body is not valid JSON: {exc}") from exc


class _Skeleton:
    """A recursive-descent JSON parser of the document around the tensors, over the body's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.values = 0

    def _count(self) -> None:
        self.values += 1
        if self.values > MAX_SKELETON_VALUES:
            raise TooManyValuesError(
                f"the JSON body holds more than {MAX_SKELETON_VALUES} values outside numeric tensors"
            )

    def skip(self, i: int) -> int:
        """Index of the first non-whitespace byte at or after i."""
        return _WS.match(self.data, i).end()  # type: ignore[union-attr]  # always matches

    def value(self, i: int) -> tuple[Any, int]:
        i = self.skip(i)
        c = self.data[i : i + 1]
        if c == b"{":
            return self._object(i + 1)
        if c == b"[":
            return self._array(i + 1)
        self._count()
        if c == b'"':
            end = self._string_end(i)
            return _scalar(self.data[i:end]), end
        number = _NUMBER.match(self.data, i)
        if number is not None:
            return _scalar(number.group()), number.end()
        for literal, value in _LITERALS.items():
            if self.data.startswith(literal, i):
                return value, i + len(literal)
        raise self._expected("a value", i)

    def _string_end(self, i: int) -> int:
        """Index after the closing quote of the string that starts at i (quotes preceded by an odd
        number of backslashes are escaped)."""
        j = i + 1
        while True:
            j = self.data.find(b'"', j)
            if j < 0:
                raise InvalidJsonError(f"the body is not valid JSON: unterminated string at byte {i}")
            k = j - 1
            while self.data[k] == _BACKSLASH:
                k -= 1
            if (j - 1 - k) % 2 == 0:
                return j + 1
            j += 1

    def _expected(self, what: str, i: int) -> InvalidJsonError:
        return InvalidJsonError(f"the body is not valid JSON: expected {what} at byte {i}")

    def _object(self, i: int) -> tuple[dict[str, Any], int]:
        self._count()
        out: dict[str, Any] = {}
        i = self.skip(i)
        if self.data[i : i + 1] == b"}":
            return out, i + 1
        while True:
            if self.data[i : i + 1] != b'"':
                raise self._expected("a property name in double quotes", i)
            key, i = self.value(i)
            i = self.skip(i)
            if self.data[i : i + 1] != b":":
                raise self._expected("':'", i)
            out[key], i = self.value(i + 1)  # a repeated key: the last one wins, as in json
            i = self.skip(i)
            c = self.data[i : i + 1]
            if c == b"}":
                return out, i + 1
            if c != b",":
                raise self._expected("',' or '}'", i)
            i = self.skip(i + 1)

    def _array(self, i: int) -> tuple[list[Any] | JsonTensor, int]:
        if _opens_a_tensor(self.data, i):
            close, stop = _closing_bracket(self.data, i)
            if close < 0:
                raise self._mixed(i - 1, stop)
            self._count()
            return JsonTensor(self.data, i - 1, close + 1), close + 1
        self._count()
        out: list[Any] = []
        i = self.skip(i)
        if self.data[i : i + 1] == b"]":
            return out, i + 1
        while True:
            item, i = self.value(i)
            out.append(item)
            i = self.skip(i)
            c = self.data[i : i + 1]
            if c == b"]":
                return out, i + 1
            if c != b",":
                raise self._expected("',' or ']'", i)
            i += 1

    def _mixed(self, start: int, run_end: int) -> ValueError:
        after = self.data[run_end : run_end + 1]
        found = _MIXED.get(after)
        if found is None:
            return InvalidJsonError(
                f"the body is not valid JSON: unexpected {after!r} at byte {run_end} "
                f"in the array starting at byte {start}"
            )
        return MixedArrayError(
            f"the JSON array at byte {start} holds {run_end - start} bytes of numbers, then {found} "
            f"(byte {run_end}); a tensor must hold numbers only",
            found,
        )


def _levels(data: bytes, a: int, b: int, depth: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The bytes of data[a:b] (no copy) and the bracket depth after each of them."""
    chars = np.frombuffer(data, np.uint8, count=b - a, offset=a)
    steps = (chars == _OPEN).astype(np.int8) - (chars == _CLOSE).astype(np.int8)
    return chars, np.cumsum(steps, dtype=np.int64) + depth


def _first_close(data: bytes, start: int, stop: int) -> int:
    """Index of the first ']' in data[start:stop] at which the depth (1 at start) falls to 0, or -1."""
    _, level = _levels(data, start, stop, 1)
    hits = np.flatnonzero(level == 0)
    return start + int(hits[0]) if hits.size else -1


def _opens_a_tensor(data: bytes, start: int) -> bool:
    """True when the array opened just before ``start`` runs on for TENSOR_MIN_CHARS numeric
    characters without closing. Looked at through growing windows, so that a small array costs
    about its own length (a long numeric run full of small arrays must not be rescanned for each)."""
    for window in [w for w in (64, 1024) if w < TENSOR_MIN_CHARS] + [TENSOR_MIN_CHARS]:
        end = min(start + window, len(data))
        run = _NUMERIC_RUN.match(data, start, end).end()  # type: ignore[union-attr]  # always matches
        if run == start or _first_close(data, start, run) >= 0:
            return False  # empty, or closed: a small array
        if run < end or end == len(data):
            return False  # something else than numbers (or the end) comes first: parsed value by value
        if window >= TENSOR_MIN_CHARS:
            return True
    return False


def _closing_bracket(data: bytes, start: int) -> tuple[int, int]:
    """(index of the ']' that closes the array opened just before ``start``, -1) if only numeric
    characters come first; else (-1, index of the first other character or the end of the data)."""
    depth = 1
    a = start
    size = TENSOR_MIN_CHARS  # growing chunks: an array costs about its own length, not a whole chunk
    while a < len(data):
        b = min(a + size, len(data))
        chars, level = _levels(data, a, b, depth)
        other = np.flatnonzero(~_NUMERIC_BYTES[chars])
        stop = b if not other.size else a + int(other[0])
        hits = np.flatnonzero(level[: stop - a] == 0)
        if hits.size:
            return a + int(hits[0]), -1
        if stop < b:
            return -1, stop
        depth = int(level[-1])
        a, size = b, min(2 * size, PIECE_CHARS)
    return -1, len(data)


def _loads(piece: bytes) -> Any:
    try:
        return json.loads(piece)
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(f"the body is not valid JSON inside a tensor: {exc.msg}") from exc
    except ValueError as exc:  # an integer with more digits than int() accepts
        raise InvalidJsonError(f"a number inside a tensor cannot be read: {exc}") from exc


def _cuts(data: bytes, start: int, stop: int) -> tuple[list[int], int]:
    """Commas between the elements of an array (inside ``[start, stop)``) to cut it at, and their count.

    In every scanned chunk the first and the last top-level comma are cut points, so each piece is
    either one element (between consecutive top-level commas, however long) or shorter than a chunk.
    """
    cuts: list[int] = []
    commas = 0
    depth = 0
    for a in range(start, stop, PIECE_CHARS):
        chars, level = _levels(data, a, min(a + PIECE_CHARS, stop), depth)
        top = np.flatnonzero((level == 0) & (chars == _COMMA))
        if top.size:
            commas += int(top.size)
            cuts.append(a + int(top[0]))
            if top.size > 1:
                cuts.append(a + int(top[-1]))
        depth = int(level[-1])
    return cuts, commas


def _parse_span(
    data: bytes, start: int, stop: int, convert: Callable[[Any], npt.NDArray[Any]], level: int = 0
) -> npt.NDArray[Any]:
    """Parse the array data[start:stop] (brackets included) into one array, in pieces when it is long."""
    if stop - start <= PIECE_CHARS:
        return convert(_loads(data[start:stop]))
    if level >= MAX_SPLIT_DEPTH:  # each level scans the text again: keep a hostile nesting cheap
        raise RaggedError(f"a JSON tensor nests more than {MAX_SPLIT_DEPTH} levels of long arrays")
    inner_start, inner_stop = start + 1, stop - 1
    cuts, commas = _cuts(data, inner_start, inner_stop)
    bounds = [inner_start - 1, *cuts, inner_stop]  # data[bounds[k] + 1 : bounds[k + 1]] is one piece
    count = commas + 1
    out: npt.NDArray[Any] | None = None
    filled = 0
    for k in range(len(bounds) - 1):
        a, b = bounds[k] + 1, bounds[k + 1]
        first = _WS.match(data, a).end()  # type: ignore[union-attr]  # always matches
        if first >= b:
            raise InvalidJsonError(f"the body is not valid JSON: an array element is missing at byte {a}")
        if b - a > PIECE_CHARS and data[first] == _OPEN:  # longer than a chunk: one element (see _cuts)
            last = b
            while data[last - 1] in b" \t\n\r":
                last -= 1
            part = _parse_span(data, first, last, convert, level + 1)[np.newaxis]
        else:  # several elements in less than a chunk, or one (a scalar however long)
            part = convert(_loads(b"[" + data[a:b] + b"]"))
        if out is None:
            out = np.empty((count, *part.shape[1:]), dtype=part.dtype)
        if part.shape[1:] != out.shape[1:]:
            raise RaggedError(
                f"nested lists of different shapes in one array: {list(out.shape[1:])} and {list(part.shape[1:])}"
            )
        out[filled : filled + part.shape[0]] = part
        filled += part.shape[0]
    if out is None or filled != count:  # cannot happen: every element is in exactly one piece
        raise RaggedError(f"parsed {filled} elements of an array of {count}")
    return out

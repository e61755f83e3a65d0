"""Read a legacy (non-zip) ``torch.save`` state_dict into numpy arrays without torch.

The legacy format is a sequence of pickles followed by raw storage bytes:

1. the magic number ``0x1950A86A20F9469CFC6C``,
2. the protocol version (1001),
3. a ``sys_info`` dict (endianness, type sizes),
4. the object itself (here an ``OrderedDict`` name -> tensor), whose storages are
   ``persistent_load`` ids ``('storage', <XStorage>, key, location, numel, view_metadata)``,
5. the list of storage keys; then, per key in that order, an int64 element count and the
   little-endian element bytes.

A pickle can execute arbitrary code through any global it names, so the unpickler here
resolves only the few names a state_dict needs and refuses every other one.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = ["MAGIC_NUMBER", "LegacyPthError", "UnsafePickleError", "read_state_dict"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# Storage class name -> numpy dtype ("<" because the format is little-endian on disk).
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_REBUILD_NAMES = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2"})


class LegacyPthError(ValueError):
    """The file is not a readable legacy ``torch.save`` state_dict."""


class UnsafePickleError(LegacyPthError):
    """The pickle names a global outside the allow-list (it could run code)."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.XStorage`` class: only its element dtype matters."""

    name: str
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _StorageRef:
    """A storage referenced by the object pickle, filled in after the pickles are read."""

    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A strided view into a storage, materialised once the storage bytes are read."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: object, offset: object, size: object, stride: object, *_: object) -> _TensorRef:
    """Record the arguments of ``torch._utils._rebuild_tensor[_v2]`` instead of building a tensor."""
    if not isinstance(storage, _StorageRef):
        raise LegacyPthError(f"tensor rebuilt from {type(storage).__name__}, expected a storage")
    if not isinstance(offset, int) or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise LegacyPthError("malformed tensor record (offset/size/stride)")
    return _TensorRef(storage, offset, tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a legacy state_dict needs."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Return a harmless stand-in for an allowed global; refuse anything else."""
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILD_NAMES:
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # protocol 2 says __builtin__
        raise UnsafePickleError(
            f"refusing to load global {module}.{name}: only torch tensor/storage rebuild helpers "
            "and collections.OrderedDict are allowed in a state_dict"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        """Resolve a ``('storage', type, key, location, numel, view)`` id to a storage stand-in."""
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise LegacyPthError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise LegacyPthError(f"storage type {storage_type!r:.80} is not a torch storage class")
        if view_metadata is not None:
            # Storage views were dropped from torch long before these files; none to support.
            raise LegacyPthError("storage views (view_metadata) are not supported")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise LegacyPthError(f"malformed storage id {pid!r:.80}")
        ref = self.storages.get(key)
        if ref is None:
            ref = _StorageRef(key, storage_type.dtype, numel)
            self.storages[key] = ref
        return ref


def _load_pickle(stream: BinaryIO, what: str) -> tuple[Any, _RestrictedUnpickler]:
    """Unpickle one object from the stream with the restricted unpickler."""
    unpickler = _RestrictedUnpickler(stream)
    try:
        return unpickler.load(), unpickler
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as e:
        raise LegacyPthError(f"cannot read the {what} pickle: {e}") from e


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    """Read exactly n bytes or raise a truncation error naming what was being read."""
    data = stream.read(n)
    if len(data) != n:
        raise LegacyPthError(f"file truncated while reading {what}: wanted {n} bytes, got {len(data)}")
    return data


def _materialise(ref: _TensorRef, buffers: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Copy a strided view of a storage buffer into a contiguous array, checking bounds."""
    buf = buffers[ref.storage.key]
    if len(ref.size) != len(ref.stride):
        raise LegacyPthError("tensor size and stride lengths differ")
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, dtype=buf.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or any(s < 0 for s in ref.stride) or last >= buf.size:
        raise LegacyPthError(f"tensor view out of bounds of storage {ref.storage.key}")
    item = buf.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        buf[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride), writeable=False
    )
    # order="C": these files store conv weights as permuted views (TF layout underneath).
    return np.array(view, dtype=buf.dtype.newbyteorder("="), order="C", copy=True)


def read_state_dict(source: str | Path | bytes) -> dict[str, npt.NDArray[Any]]:
    """Read a legacy ``torch.save`` state_dict (path or bytes) into an ordered dict of numpy arrays.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        LegacyPthError: bad magic number, zip-format file, truncated or malformed data.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:2] == b"PK":
        raise LegacyPthError("this is a zip-format torch.save file; only the legacy format is supported")
    stream = io.BytesIO(data)
    magic, _ = _load_pickle(stream, "magic number")
    if magic != MAGIC_NUMBER:
        raise LegacyPthError(f"bad magic number {magic!r:.40}: not a legacy torch.save file")
    version, _ = _load_pickle(stream, "protocol version")
    if version != PROTOCOL_VERSION:
        raise LegacyPthError(f"unsupported legacy protocol version {version!r:.40}")
    sys_info, _ = _load_pickle(stream, "sys_info")
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise LegacyPthError("only little-endian legacy files are supported")
    obj, unpickler = _load_pickle(stream, "state_dict")
    keys, _ = _load_pickle(stream, "storage key list")
    if not isinstance(obj, dict):
        raise LegacyPthError(f"top-level object is {type(obj).__name__}, expected a state_dict")
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise LegacyPthError("storage key list does not match the storages the state_dict references")

    buffers: dict[str, npt.NDArray[Any]] = {}
    for key in keys:
        ref = unpickler.storages[key]
        (numel,) = struct.unpack("<q", _read_exact(stream, 8, f"storage {key} size"))
        if numel != ref.numel:
            raise LegacyPthError(f"storage {key}: {numel} elements on disk, {ref.numel} declared")
        raw = _read_exact(stream, numel * ref.dtype.itemsize, f"storage {key}")
        buffers[key] = np.frombuffer(raw, dtype=ref.dtype)

    result: dict[str, npt.NDArray[Any]] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise LegacyPthError(f"entry {name!r:.80} is not a tensor")
        result[name] = _materialise(value, buffers)
    return result

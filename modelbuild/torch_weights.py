"""Copy a PyTorch state_dict (numpy arrays from ``legacy_pth``) into a Keras model built layer for layer.

Layouts: conv weights (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise (C, 1, kh, kw) ->
(kh, kw, C, 1); dense weights transposed; BatchNorm is weight, bias, running_mean, running_var.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import keras

__all__ = ["copy_state_dict"]


def _convert(layer_type: str, prefix: str, sd: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    """Return the Keras weight list for one layer from the PyTorch tensors under ``prefix``."""
    if layer_type == "Conv2D":
        return [sd[prefix + ".weight"].transpose(2, 3, 1, 0)]  # (out,in,kh,kw) -> (kh,kw,in,out)
    if layer_type == "DepthwiseConv2D":
        return [sd[prefix + ".weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
    if layer_type == "BatchNormalization":
        return [sd[prefix + s] for s in (".weight", ".bias", ".running_mean", ".running_var")]
    if layer_type == "Dense":
        return [sd[prefix + ".weight"].T, sd[prefix + ".bias"]]
    raise ValueError(f"no weight conversion for layer type {layer_type}")


def copy_state_dict(
    model: keras.Model, state_dict: Mapping[str, npt.NDArray[Any]], torch_prefix: Callable[[str], str]
) -> None:
    """Set every weighted layer from the tensors under ``torch_prefix(layer.name)``.

    Fails on a missing tensor, a shape that differs, or a tensor no layer used.
    """
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torch_prefix(layer.name)
        kind = type(layer).__name__
        try:
            values = _convert(kind, prefix, state_dict)
        except KeyError as e:
            raise ValueError(f"state_dict has no tensor {e} for layer {layer.name}") from e
        expected = [tuple(w.shape) for w in layer.weights]
        got = [v.shape for v in values]
        if expected != got:
            raise ValueError(f"layer {layer.name}: Keras shapes {expected} != converted {got}")
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])
        used.update(k for k in state_dict if k.startswith(prefix + "."))
    # num_batches_tracked is a training counter with no inference role.
    unused = sorted(k for k in state_dict if k not in used and not k.endswith(".num_batches_tracked"))
    if unused:
        raise ValueError(f"state_dict tensors not used by the model: {unused[:5]} ({len(unused)} in all)")

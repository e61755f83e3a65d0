"""EfficientNet-Lite0 in Keras 3 (stock layers only) and weight loading from the PyTorch state_dict.

Architecture per Google's ``efficientnet_lite_builder``: no squeeze-excite, ReLU6, TF "same"
padding, BatchNorm epsilon 1e-3. The input normalisation ``(x - 127) / 128`` is the first layer,
so callers send float32 pixels in 0..255. Layer names are the PyTorch keys without the leading
underscores (TF scope names may not start with "_"): ``_blocks.3._bn1`` is layer ``blocks.3.bn1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import keras

__all__ = [
    "BLOCKS",
    "IMAGE_SIZE",
    "INPUT_NAME",
    "NUM_CLASSES",
    "OUTPUT_NAME",
    "BlockSpec",
    "build_model",
    "load_state_dict",
]

IMAGE_SIZE = 224
NUM_CLASSES = 1000
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
_BN_EPSILON = 1e-3
# Keras' BatchNormalization momentum is irrelevant at inference; 0.99 is the TF reference value.
_BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv stage: repeats, kernel, first stride, expand ratio, input and output filters."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(1, 3, 1, 1, 32, 16),
    BlockSpec(2, 3, 2, 6, 16, 24),
    BlockSpec(2, 5, 2, 6, 24, 40),
    BlockSpec(3, 3, 2, 6, 40, 80),
    BlockSpec(3, 5, 1, 6, 80, 112),
    BlockSpec(4, 5, 2, 6, 112, 192),
    BlockSpec(1, 3, 1, 6, 192, 320),
)


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str, act: bool) -> Any:
    """Apply a bias-free conv, BatchNorm and optionally ReLU6."""
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=conv)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=bn)(x)
    if act:
        x = layers.ReLU(max_value=6.0, name=f"{bn}.relu6")(x)
    return x


def _mbconv(x: Any, index: int, spec: BlockSpec, stride: int, filters_in: int) -> Any:
    """Apply one MBConv block (expand, depthwise, project, residual when shapes allow)."""
    from keras import layers

    p = f"blocks.{index}."
    inputs = x
    if spec.expand != 1:
        x = _conv_bn(x, filters_in * spec.expand, 1, 1, p + "expand_conv", p + "bn0", act=True)
    x = layers.DepthwiseConv2D(
        spec.kernel, strides=stride, padding="same", use_bias=False, name=p + "depthwise_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=p + "bn1")(x)
    x = layers.ReLU(max_value=6.0, name=p + "bn1.relu6")(x)
    x = _conv_bn(x, spec.filters_out, 1, 1, p + "project_conv", p + "bn2", act=False)
    if stride == 1 and filters_in == spec.filters_out:
        x = layers.Add(name=p + "add")([x, inputs])
    return x


def build_model() -> keras.Model:
    """Build EfficientNet-Lite0 taking [N,224,224,3] float32 0..255 and returning softmax [N,1000]."""
    import keras
    from keras import layers

    images = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype="float32", name=INPUT_NAME)
    x = layers.Rescaling(scale=1.0 / 128.0, offset=-127.0 / 128.0, name="normalise")(images)
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0", act=True)
    index = 0
    for spec in BLOCKS:
        for repeat in range(spec.repeats):
            first = repeat == 0
            stride = spec.stride if first else 1
            filters_in = spec.filters_in if first else spec.filters_out
            x = _mbconv(x, index, spec, stride, filters_in)
            index += 1
    x = _conv_bn(x, 1280, 1, 1, "conv_head", "bn1", act=True)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(images, probs, name="efficientnet_lite0")


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


def _torch_prefix(layer_name: str) -> str:
    """Return the state_dict key prefix of a Keras layer (``blocks.3.bn1`` -> ``_blocks.3._bn1``)."""
    if layer_name == OUTPUT_NAME:
        return "_fc"
    return ".".join(part if part.isdigit() else "_" + part for part in layer_name.split("."))


def load_state_dict(model: keras.Model, state_dict: Mapping[str, npt.NDArray[Any]]) -> None:
    """Copy every PyTorch tensor into the matching Keras layer; fail on any missing or unused key."""
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = _torch_prefix(layer.name)
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

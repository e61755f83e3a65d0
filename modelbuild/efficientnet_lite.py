"""EfficientNet-Lite0/Lite2 in Keras 3 (stock layers only) and weight loading from the PyTorch state_dict.

Architecture per Google's ``efficientnet_lite_builder``: no squeeze-excite, ReLU6, TF "same"
padding, BatchNorm epsilon 1e-3. The input normalisation ``(x - 127) / 128`` is the first layer,
so callers send float32 pixels in 0..255. Layer names are the PyTorch keys without the leading
underscores (TF scope names may not start with "_"): ``_blocks.3._bn1`` is layer ``blocks.3.bn1``.

The variants scale Lite0's stages (``efficientnet_model.round_filters`` / ``round_repeats``): filters
by the width coefficient rounded to multiples of 8, repeats by the depth coefficient rounded up;
Lite models keep the stem (32), the head (1280) and the first and last stages' repeats fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from modelbuild.torch_weights import copy_state_dict

if TYPE_CHECKING:
    import keras

__all__ = [
    "BLOCKS",
    "IMAGE_SIZE",
    "INPUT_NAME",
    "LITE0",
    "LITE2",
    "NUM_CLASSES",
    "OUTPUT_NAME",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "BlockSpec",
    "Variant",
    "build_model",
    "load_state_dict",
]

IMAGE_SIZE = 224
NUM_CLASSES = 1000
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
"""The Lite models' normalisation ``(x - 127) / 128`` on 0..255 pixels, built in as the first layer."""
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


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: width and depth coefficients and input resolution."""

    name: str
    width: float
    depth: float
    image_size: int

    def filters(self, filters: int) -> int:
        """``round_filters``: scale, round to a multiple of 8, never more than 10 % below the scaled value."""
        scaled = filters * self.width
        rounded = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
        return rounded + _DIVISOR if rounded < 0.9 * scaled else rounded

    def stages(self) -> tuple[BlockSpec, ...]:
        """Lite0's stages scaled; the first and last keep their repeats (``fix_head_stem``)."""
        last = len(BLOCKS) - 1
        return tuple(
            BlockSpec(
                b.repeats if i in (0, last) else math.ceil(b.repeats * self.depth),
                b.kernel,
                b.stride,
                b.expand,
                # the stem feeds stage 0 and stays 32 wide
                b.filters_in if i == 0 else self.filters(b.filters_in),
                self.filters(b.filters_out),
            )
            for i, b in enumerate(BLOCKS)
        )


_DIVISOR = 8
LITE0 = Variant("efficientnet_lite0", 1.0, 1.0, 224)
LITE2 = Variant("efficientnet_lite2", 1.1, 1.2, 260)


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


def build_model(variant: Variant = LITE0) -> keras.Model:
    """Build the variant taking [N,S,S,3] float32 0..255 (S: its image size) and returning softmax [N,1000]."""
    import keras
    from keras import layers

    size = variant.image_size
    images = keras.Input(shape=(size, size, 3), dtype="float32", name=INPUT_NAME)
    x = layers.Rescaling(scale=1.0 / PIXEL_STD, offset=-PIXEL_MEAN / PIXEL_STD, name="normalise")(images)
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0", act=True)
    index = 0
    for spec in variant.stages():
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
    return keras.Model(images, probs, name=variant.name)


def _torch_prefix(layer_name: str) -> str:
    """Return the state_dict key prefix of a Keras layer (``blocks.3.bn1`` -> ``_blocks.3._bn1``)."""
    if layer_name == OUTPUT_NAME:
        return "_fc"
    return ".".join(part if part.isdigit() else "_" + part for part in layer_name.split("."))


def load_state_dict(model: keras.Model, state_dict: Mapping[str, npt.NDArray[Any]]) -> None:
    """Copy every PyTorch tensor into the matching Keras layer; fail on any missing or unused key."""
    copy_state_dict(model, state_dict, _torch_prefix)

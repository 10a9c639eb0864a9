"""Built-in Keras models, each parameterized by its channel widths and with stable layer names.

Used by job specs (`model: seed_cnn`) and by the pruning zoo tests, which rebuild an
architecture at the pruned widths to check parameter counts exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers as L
from keras.src.applications.convnext import LayerScale

ModelBuilder = Callable[..., keras.Model]
BUILTIN_MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def wrap(fn: ModelBuilder) -> ModelBuilder:
        BUILTIN_MODELS[name] = fn
        return fn

    return wrap


def build_model(name: str, **kwargs: Any) -> keras.Model:
    """A built-in model by name, e.g. `build_model("seed_cnn", input_shape=(28, 28, 1))`."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"Unknown built-in model {name!r}. Known: {sorted(BUILTIN_MODELS)}")
    return BUILTIN_MODELS[name](**kwargs)


def _conv_bn_relu(x, filters: int, name: str, kernel: int = 3, strides: int = 1):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


@register_model("mlp")
def mlp(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    hidden1: int = 256,
    hidden2: int = 128,
    dropout: float = 0.1,
) -> keras.Model:
    """Two hidden Dense layers with dropout."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = L.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    x = L.Dense(hidden1, activation="relu", name="fc1")(x)
    x = L.Dropout(dropout, name="drop1")(x)
    x = L.Dense(hidden2, activation="relu", name="fc2")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mlp")


@register_model("seed_cnn")
def seed_cnn(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    conv1: int = 32,
    conv2: int = 64,
    fc: int = 128,
    dropout: float = 0.0,
) -> keras.Model:
    """The seed's handwritten-digit CNN, made correct: max-pooling and a Flatten -> Dense head
    (the global-average-pool layout reached 48% on the 5,000 MNIST digits; this one 96%)."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = L.Conv2D(conv1, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(name="pool1")(x)
    x = L.Conv2D(conv2, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(dropout, name="drop")(x) if dropout else x
    x = L.Dense(fc, activation="relu", name="fc")(x)
    x = L.Dropout(dropout, name="fc_drop")(x) if dropout else x
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


@register_model("vgg")
def vgg(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    stage1: int = 16,
    stage2: int = 32,
    stage3: int = 64,
) -> keras.Model:
    """VGG-style: two conv-BN-ReLU per stage, max-pool between stages, global pool head."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for s, width in enumerate((stage1, stage2, stage3), start=1):
        x = _conv_bn_relu(x, width, f"s{s}_conv1")
        x = _conv_bn_relu(x, width, f"s{s}_conv2")
        x = L.MaxPooling2D(name=f"s{s}_pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="vgg")


@register_model("resnet")
def resnet(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    stage1: int = 16,
    stage2: int = 32,
    inner1: int = 16,
    inner2: int = 32,
) -> keras.Model:
    """ResNet: an identity-shortcut block then a projection-shortcut block (stride 2)."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, stage1, "stem")
    y = _conv_bn_relu(x, inner1, "b1_conv1")
    y = L.Conv2D(stage1, 3, padding="same", use_bias=False, name="b1_conv2")(y)
    y = L.BatchNormalization(name="b1_conv2_bn")(y)
    x = L.ReLU(name="b1_out")(L.Add(name="b1_add")([x, y]))
    y = _conv_bn_relu(x, inner2, "b2_conv1", strides=2)
    y = L.Conv2D(stage2, 3, padding="same", use_bias=False, name="b2_conv2")(y)
    y = L.BatchNormalization(name="b2_conv2_bn")(y)
    s = L.Conv2D(stage2, 1, strides=2, use_bias=False, name="b2_proj")(x)
    s = L.BatchNormalization(name="b2_proj_bn")(s)
    x = L.ReLU(name="b2_out")(L.Add(name="b2_add")([s, y]))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet")


@register_model("mobilenet")
def mobilenet(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    stem: int = 16,
    pointwise: int = 32,
    separable: int = 64,
    depth_multiplier: int = 2,
    dropout: float = 0.1,
) -> keras.Model:
    """MobileNet-style: depthwise (multiplier > 1) + pointwise, then a SeparableConv2D."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, stem, "stem", strides=2)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=depth_multiplier, use_bias=False,
                          name="dw1")(x)  # fmt: skip
    x = L.ReLU(6.0, name="dw1_relu")(L.BatchNormalization(name="dw1_bn")(x))
    x = _conv_bn_relu(x, pointwise, "pw1", kernel=1)
    x = L.SeparableConv2D(separable, 3, padding="same", strides=2, name="sep2")(x)
    x = L.ReLU(6.0, name="sep2_relu")(L.BatchNormalization(name="sep2_bn")(x))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(dropout, name="drop")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mobilenet")


@register_model("inception")
def inception(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    stem: int = 16,
    branch1: int = 8,
    reduce3: int = 8,
    branch3: int = 16,
    branch_pool: int = 8,
    head: int = 32,
) -> keras.Model:
    """An Inception block: 1x1, 1x1 -> 3x3 and pool -> 1x1 branches concatenated."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, stem, "stem")
    b1 = _conv_bn_relu(x, branch1, "b1x1", kernel=1)
    b3 = _conv_bn_relu(_conv_bn_relu(x, reduce3, "b3_reduce", kernel=1), branch3, "b3x3")
    bp = L.MaxPooling2D(3, strides=1, padding="same", name="bpool")(x)
    bp = _conv_bn_relu(bp, branch_pool, "bpool_proj", kernel=1)
    x = L.Concatenate(name="mixed")([b1, b3, bp])
    x = _conv_bn_relu(x, head, "head")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="inception")


@register_model("text_cnn")
def text_cnn(
    input_shape: Sequence[int] = (40,),
    num_classes: int = 4,
    vocab: int = 500,
    embed: int = 32,
    conv1: int = 48,
    conv2: int = 48,
) -> keras.Model:
    """Conv1D text classifier: Embedding -> Conv1D -> pool -> Conv1D -> global pool -> Dense."""
    inputs = keras.Input(tuple(input_shape), dtype="int32", name="tokens")
    x = L.Embedding(vocab, embed, name="embed")(inputs)
    x = L.Conv1D(conv1, 5, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling1D(2, name="pool")(x)
    x = L.Conv1D(conv2, 3, padding="valid", activation="relu", name="conv2")(x)
    x = L.GlobalMaxPooling1D(name="gmp")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="text_cnn")


@register_model("conv3d")
def conv3d(
    input_shape: Sequence[int] = (8, 16, 16, 1),
    num_classes: int = 3,
    conv1: int = 8,
    conv2: int = 16,
) -> keras.Model:
    """Volumetric: Conv3D -> BN -> ReLU -> pool -> Conv3D -> global pool."""
    inputs = keras.Input(tuple(input_shape), name="volume")
    x = L.Conv3D(conv1, 3, padding="same", name="conv1")(inputs)
    x = L.ReLU(name="conv1_relu")(L.BatchNormalization(name="conv1_bn")(x))
    x = L.MaxPooling3D(2, name="pool")(x)
    x = L.Conv3D(conv2, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling3D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="conv3d")


@register_model("autoencoder")
def autoencoder(
    input_shape: Sequence[int] = (16, 16, 1),
    num_classes: int = 0,
    encode: int = 16,
    bottleneck: int = 8,
    decode: int = 16,
) -> keras.Model:
    """Conv2D encoder, Conv2DTranspose decoder with ZeroPadding/Cropping/UpSampling."""
    del num_classes
    inputs = keras.Input(tuple(input_shape), name="image")
    x = L.ZeroPadding2D(1, name="pad")(inputs)
    x = L.Conv2D(encode, 3, strides=2, activation="relu", name="enc")(x)
    x = L.Conv2D(bottleneck, 3, padding="same", activation="tanh", name="bottleneck")(x)
    x = L.Conv2DTranspose(decode, 3, strides=2, padding="same", activation="relu", name="dec")(x)
    x = L.UpSampling2D(1, name="up")(x)
    x = L.Cropping2D(0, name="crop")(x)
    outputs = L.Conv2D(input_shape[-1], 3, padding="same", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


@register_model("nested")
def nested(
    input_shape: Sequence[int] = (16, 16, 3),
    num_classes: int = 10,
    stem: int = 16,
    block: int = 24,
    fc: int = 32,
) -> keras.Model:
    """A functional model that calls a nested Sequential block and a nested Functional head."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = L.Conv2D(stem, 3, padding="same", activation="relu", name="stem")(inputs)
    body = keras.Sequential(
        [
            keras.Input((input_shape[0], input_shape[1], stem)),
            L.Conv2D(block, 3, padding="same", name="inner_conv"),
            L.BatchNormalization(name="inner_bn"),
            L.Activation("relu", name="inner_relu"),
            L.MaxPooling2D(name="inner_pool"),
        ],
        name="body",
    )
    x = body(x)
    head_in = keras.Input((input_shape[0] // 2, input_shape[1] // 2, block))
    h = L.Flatten(name="head_flatten")(head_in)
    h = L.Dense(fc, activation="relu", name="head_fc")(h)
    head = keras.Model(head_in, h, name="head")
    x = head(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="nested")


def _hard_sigmoid(x):
    """MobileNetV3's hard-sigmoid written with operators (Keras op nodes, not layers)."""
    return keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


@register_model("squeeze_excite")
def squeeze_excite(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    stem: int = 16,
    squeeze: int = 8,
    project: int = 24,
) -> keras.Model:
    """MobileNetV3-style: hard-swish stem, depthwise, squeeze-and-excite (Reshape to (1, 1, C),
    hard-sigmoid gate) and a 1x1 projection."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = L.Conv2D(stem, 3, strides=2, padding="same", name="stem")(inputs)
    x = x * _hard_sigmoid(x)  # hard-swish
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    s = L.GlobalAveragePooling2D(name="se_pool")(x)
    s = L.Reshape((1, 1, stem), name="se_reshape")(s)
    s = L.Conv2D(squeeze, 1, activation="relu", name="se_squeeze")(s)
    s = _hard_sigmoid(L.Conv2D(stem, 1, name="se_expand")(s))
    x = L.Multiply(name="se_scale")([x, s])
    x = L.Conv2D(project, 1, name="project")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="squeeze_excite")


@register_model("resnext")
def resnext(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    cardinality: int = 8,
    group_width: int = 4,
    expand: int = 32,
) -> keras.Model:
    """ResNeXt-style: a grouped 3x3 convolution (`cardinality` groups of `group_width` channels)
    between 1x1 convolutions; pruning removes whole groups."""
    inputs = keras.Input(tuple(input_shape), name="image")
    width = cardinality * group_width
    x = _conv_bn_relu(inputs, width, "stem", kernel=1)
    x = L.Conv2D(width, 3, padding="same", groups=cardinality, use_bias=False, name="grouped")(x)
    x = L.ReLU(name="grouped_relu")(L.BatchNormalization(name="grouped_bn")(x))
    x = _conv_bn_relu(x, expand, "expand", kernel=1)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnext")


@register_model("convnext")
def convnext(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    dim: int = 16,
    expand: int = 64,
) -> keras.Model:
    """A ConvNeXt block: depthwise 7x7 written as `Conv2D(groups=dim)`, an inverted bottleneck of
    Dense layers, a per-channel `LayerScale` and a residual add."""
    inputs = keras.Input(tuple(input_shape), name="image")
    stem = L.Conv2D(dim, 4, strides=4, name="stem")(inputs)
    x = L.Conv2D(dim, 7, padding="same", groups=dim, name="dw")(stem)
    x = L.Dense(expand, activation="gelu", name="pw1")(x)
    x = L.Dense(dim, name="pw2")(x)
    x = LayerScale(1e-6, dim, name="layer_scale")(x)
    x = L.Add(name="residual")([stem, x])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="convnext")


@register_model("transformer")
def transformer(
    input_shape: Sequence[int] = (32,),
    num_classes: int = 10,
    vocab: int = 500,
    embed: int = 32,
    heads: int = 4,
    head_size: int = 8,
    ffn: int = 64,
) -> keras.Model:
    """A Transformer encoder block on tokens: self-attention and a feed-forward network, each
    with a residual add; pruning removes whole heads."""
    inputs = keras.Input(tuple(input_shape), dtype="int32", name="tokens")
    x = L.Embedding(vocab, embed, name="embed")(inputs)
    attention = L.MultiHeadAttention(heads, head_size, name="attn")(x, x)
    x = L.Add(name="attn_residual")([x, attention])
    h = L.Dense(ffn, activation="relu", name="ffn1")(x)
    x = L.Add(name="ffn_residual")([x, L.Dense(embed, name="ffn2")(h)])
    x = L.GlobalAveragePooling1D(name="gap")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="transformer")


@register_model("lstm")
def lstm(
    input_shape: Sequence[int] = (32,),
    num_classes: int = 10,
    vocab: int = 500,
    embed: int = 32,
    lstm: int = 32,
    gru: int = 16,
) -> keras.Model:
    """A recurrent text classifier: Embedding -> LSTM (sequences) -> GRU -> Dense."""
    inputs = keras.Input(tuple(input_shape), dtype="int32", name="tokens")
    x = L.Embedding(vocab, embed, name="embed")(inputs)
    x = L.LSTM(lstm, return_sequences=True, name="lstm")(x)
    x = L.GRU(gru, name="gru")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="lstm")


@register_model("bidirectional")
def bidirectional(
    input_shape: Sequence[int] = (32,),
    num_classes: int = 10,
    vocab: int = 500,
    embed: int = 32,
    forward: int = 24,
    backward: int = 24,
) -> keras.Model:
    """A Bidirectional LSTM (outputs concatenated); each direction has its own width."""
    inputs = keras.Input(tuple(input_shape), dtype="int32", name="tokens")
    x = L.Embedding(vocab, embed, name="embed")(inputs)
    backward_layer = L.LSTM(backward, go_backwards=True, name="backward_lstm")
    x = L.Bidirectional(L.LSTM(forward, name="lstm"), backward_layer=backward_layer, name="bi")(x)
    outputs = L.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="bidirectional")

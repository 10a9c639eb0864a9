"""Issue 11: every family of `keras.applications` (its smallest model, weights=None, its smallest
input, 10 classes) prunes at 0.5, with l1 in local scope and taylor in global scope: parameters
and FLOPs fall, the output shape holds, the model saves and reloads; what is frozen (kept whole)
is exactly what slimray does not support yet, as the README's catalogue says."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from slimray.pruning import Pruner, ScoringBatch

pytestmark = pytest.mark.timeout(900)

# family -> (smallest model, smallest input side), and what stays frozen in it
FAMILIES = {
    "convnext": ("ConvNeXtTiny", 32, set()),
    "densenet": ("DenseNet121", 32, set()),
    "efficientnet": ("EfficientNetB0", 32, set()),
    "efficientnet_v2": ("EfficientNetV2B0", 32, set()),
    "inception_resnet_v2": ("InceptionResNetV2", 75, set()),
    "inception_v3": ("InceptionV3", 75, set()),
    "mobilenet": ("MobileNet", 32, set()),
    "mobilenet_v2": ("MobileNetV2", 32, set()),
    "mobilenet_v3_small": ("MobileNetV3Small", 32, set()),
    "mobilenet_v3_large": ("MobileNetV3Large", 32, set()),
    "nasnet": ("NASNetMobile", 32, set()),
    "resnet": ("ResNet50", 32, set()),
    "resnet_v2": ("ResNet50V2", 32, set()),
    "vgg16": ("VGG16", 32, set()),
    "vgg19": ("VGG19", 32, set()),
    "xception": ("Xception", 75, set()),
}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_every_application_family_prunes(family, tmp_path):
    name, side, frozen = FAMILIES[family]
    model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3), classes=10)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, side, side, 3)).astype("float32")
    batch = ScoringBatch(x, rng.integers(0, 10, size=4))
    for criterion, scope in (("l1", "local"), ("taylor", "global")):
        result = Pruner(criterion, {"scope": scope}).prune(model, 0.5, batch=batch)
        assert result.after.params < result.before.params, (criterion, scope)
        assert result.after.flops < result.before.flops, (criterion, scope)
        assert result.model.output_shape == model.output_shape == (None, 10)
        assert {b.operation for b in result.frozen} == frozen
    result.model.save(tmp_path / "small.keras")
    reloaded = keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(result.model(x)), atol=1e-5)

"""The `keras.applications` catalogue check shared by test_applications and
test_applications_large: build a model (weights=None, its smallest input, 10 classes), prune it
at 0.5 with l1 in local scope and taylor in global scope, and check what changed."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from slimray.pruning import Pruner, ScoringBatch

SMALLEST_SIDE = {"InceptionResNetV2": 75, "InceptionV3": 75, "Xception": 75}  # others: 32
# the slowest to build, prune and save here (8-30 s and up to 5 GB each): test_applications_large
LARGE = (
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtXLarge", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7", "EfficientNetV2L", "EfficientNetV2M", "NASNetLarge",
    "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2",
    "InceptionResNetV2",
)  # fmt: skip


# between a family's first and largest member (the same blocks, wider or deeper than both):
# `make test-members` prunes them, `make test` does not (marked `members`: 140 s of its time)
MIDDLE_MEMBERS = frozenset({
    "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "EfficientNetB5", "EfficientNetB6",
    "EfficientNetV2M", "ResNet101", "ResNet101V2",
})  # fmt: skip


def every_application() -> list[str]:
    """Every model constructor `keras.applications` exports (ResNet50, MobileNetV3Small, ...)."""
    return sorted(
        n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))
    )


BOTH_PASSES = (("l1", "local"), ("taylor", "global"))
# the larger members of a family (the same blocks, wider or deeper) are pruned once, with Taylor
# scores in global scope; each family's first member is pruned both ways
LATER_MEMBERS = frozenset({
    "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge", "DenseNet169", "DenseNet201",
    "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L", "NASNetLarge", "ResNet101", "ResNet152",
    "ResNet101V2", "ResNet152V2", "VGG19",
})  # fmt: skip


def passes(name: str) -> tuple[tuple[str, str], ...]:
    """How `name` is pruned by `check_application`: once if its family's first member is pruned both ways."""
    return (("taylor", "global"),) if name in LATER_MEMBERS else BOTH_PASSES


def check_application(name: str, tmp_path: Path, kept_whole: frozenset[str] = frozenset(),
                      passes: tuple[tuple[str, str], ...] = BOTH_PASSES) -> None:  # fmt: skip
    """Params and FLOPs fall, the output shape holds, exactly `kept_whole` (operations) is kept
    whole, and the pruned model saves and reloads to the same outputs; once per (criterion,
    scope) of `passes`."""
    side = SMALLEST_SIDE.get(name, 32)
    model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3), classes=10)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, side, side, 3)).astype("float32")
    batch = ScoringBatch(x, rng.integers(0, 10, size=4))
    for criterion, scope in passes:
        result = Pruner(criterion, {"scope": scope}).prune(model, 0.5, batch=batch)
        assert result.after.params < result.before.params, (criterion, scope)
        assert result.after.flops < result.before.flops, (criterion, scope)
        assert result.model.output_shape == model.output_shape == (None, 10)
        assert {b.operation for b in result.kept_whole} == kept_whole
    result.model.save(tmp_path / "small.keras")
    reloaded = keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(result.model(x)), atol=1e-5)

"""Per-layer-class knowledge: how channels flow through a layer, which weight axes they index,
how its config shrinks, whether that keeps its function exact, and what it costs.

One contract (`base.LayerHandler`), one registry keyed by exact layer class, and the handlers by
family, as Keras groups its layers; importing this package registers them all.
"""

from slimray.pruning.handlers import (  # noqa: F401  (each family registers its layers)
    attention,
    conv,
    core,
    merging,
    normalization,
    ops,
    recurrent,
)
from slimray.pruning.handlers.base import (
    Call,
    Ids,
    KeepWholeHandler,
    LayerHandler,
    Tracer,
    describe_operation,
    elements,
    handler_for,
    keep_count,
    refuse,
    register_layer,
    registered_classes,
    require_channels_last,
    spatial,
    weight_key,
)
from slimray.pruning.handlers.normalization import register_scale_layer

__all__ = [
    "Call",
    "Ids",
    "KeepWholeHandler",
    "LayerHandler",
    "Tracer",
    "describe_operation",
    "elements",
    "handler_for",
    "keep_count",
    "refuse",
    "register_layer",
    "register_scale_layer",
    "registered_classes",
    "require_channels_last",
    "spatial",
    "weight_key",
]

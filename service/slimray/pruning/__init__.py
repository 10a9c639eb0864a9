"""Structural channel pruning for Keras 3 models: graph, importance, planning, surgery, counting.

Pure Keras + numpy; the cross-worker allreduce arrives as a `Reducer`.
"""

from slimray.pruning.costs import CostModel, CostTarget
from slimray.pruning.counting import LayerCost, ModelCost, count_model
from slimray.pruning.errors import BlockedModelError, UnsupportedLayerError
from slimray.pruning.graph import DependencyGraph, Group, KeptWhole, build_graph
from slimray.pruning.handlers import LayerHandler, register_layer, register_scale_layer
from slimray.pruning.importance import (
    Importance,
    ScoringBatch,
    criteria,
    get_criterion,
    score_groups,
)
from slimray.pruning.optimizer import carry_optimizer, register_optimizer_slots
from slimray.pruning.planner import MaskPlanner, PrunePlan, Threshold
from slimray.pruning.pruner import PruneDecision, Pruner, PruneResult
from slimray.pruning.reducer import IdentityReducer, Reducer
from slimray.pruning.schedules import PruningSchedule, get_schedule, schedules
from slimray.pruning.surgery import ShrinkResult, shrink, zero_pruned_channels

__all__ = [
    "BlockedModelError",
    "CostModel",
    "CostTarget",
    "DependencyGraph",
    "Group",
    "IdentityReducer",
    "Importance",
    "KeptWhole",
    "LayerCost",
    "LayerHandler",
    "MaskPlanner",
    "ModelCost",
    "PruneDecision",
    "PrunePlan",
    "PruneResult",
    "Pruner",
    "PruningSchedule",
    "Reducer",
    "ScoringBatch",
    "ShrinkResult",
    "Threshold",
    "UnsupportedLayerError",
    "build_graph",
    "carry_optimizer",
    "count_model",
    "criteria",
    "get_criterion",
    "get_schedule",
    "register_layer",
    "register_optimizer_slots",
    "register_scale_layer",
    "schedules",
    "score_groups",
    "shrink",
    "zero_pruned_channels",
]

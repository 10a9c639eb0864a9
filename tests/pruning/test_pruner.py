"""Pruner.decide returns one result (the plan, this worker's local scores, the seconds it took)
instead of side attributes; every reduction the engine and runtime call is in `Reducer`."""

from __future__ import annotations

import numpy as np

from slimray.pruning import IdentityReducer, PruneDecision, Pruner, Reducer, build_graph, get_criterion
from tests.pruning.zoo import ZOO, randomize


class _DoublingReducer(IdentityReducer):
    """Two identical workers: the sum doubles, min and max stay."""

    world_size = 2

    def allreduce(self, values):
        return 2 * self._local(values)


def test_decide_returns_the_local_scores_and_durations():
    model = next(e for e in ZOO if e.name == "seed_cnn").build()
    randomize(model)
    graph = build_graph(model)
    reducer = _DoublingReducer()
    decision = Pruner("l1", reducer=reducer).decide(model, 0.5, graph=graph)
    assert isinstance(decision, PruneDecision)
    local = np.concatenate(get_criterion("l1")(graph))
    np.testing.assert_allclose(decision.local_scores, local)
    assert decision.allreduce_bytes == reducer.bytes_reduced == 8 * sum(g.size for g in graph.groups)
    assert set(decision.durations) == {"score", "allreduce"} and all(
        v >= 0 for v in decision.durations.values()
    )
    assert decision.plan.removed > 0


def test_the_reducers_declare_everything_the_runtime_calls():
    for name in ("allreduce", "allmin", "allmax", "world_size", "bytes_reduced"):
        assert name in dir(Reducer) or name in Reducer.__annotations__
    assert isinstance(IdentityReducer(), Reducer)
    assert not isinstance(object(), Reducer)

"""Issue 11: LSTM, GRU and SimpleRNN prune by units (a unit's gate columns and recurrent row and
column together), Bidirectional per direction; exact (dead units), optimizer state carries over."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import MaskPlanner, build_graph, get_criterion
from tests.pruning.carry_over import check_carry_over, check_dead_channels
from tests.pruning.zoo import randomize

VOCAB, STEPS = 30, 6
RNNS = {
    "lstm": lambda n, **kw: L.LSTM(n, **kw),
    "gru": lambda n, **kw: L.GRU(n, **kw),
    "gru_reset_before": lambda n, **kw: L.GRU(n, reset_after=False, **kw),
    "simple_rnn": lambda n, **kw: L.SimpleRNN(n, **kw),
}


def _tokens(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=(n, STEPS)).astype("int32")


def _stacked(kind: str) -> keras.Model:
    inputs = keras.Input((STEPS,), dtype="int32")
    x = L.Embedding(VOCAB, 8, name="embed")(inputs)
    x = RNNS[kind](10, return_sequences=True, name="rnn1")(x)
    x = RNNS[kind](6, name="rnn2")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(x))
    randomize(model, seed=0)
    return model


@pytest.mark.parametrize("kind", RNNS)
def test_units_prune_exactly(kind):
    model = _stacked(kind)
    graph = build_graph(model, strict=True)
    assert {(g.id, g.size) for g in graph.groups} == {("embed", 8), ("rnn1", 10), ("rnn2", 6)}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _tokens())
    assert (small.get_layer("rnn1").units, small.get_layer("rnn2").units) == (5, 3)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_optimizer_state_carries_over(kind, tmp_path):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    result = check_carry_over(_stacked(kind), optimizer, _tokens(8, 2), _tokens(8, 3), tmp_path)
    assert result.kept_whole == []


def _bidirectional(merge_mode: str | None) -> keras.Model:
    inputs = keras.Input((STEPS,), dtype="int32")
    x = L.Embedding(VOCAB, 8, name="embed")(inputs)
    x = L.Bidirectional(L.LSTM(6, return_sequences=True), merge_mode=merge_mode, name="bi")(x)
    if merge_mode is None:
        x = L.Concatenate()(x)
    x = L.Bidirectional(L.GRU(4), name="bi_last")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(x))
    randomize(model, seed=0)
    return model


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_prunes_each_direction(merge_mode):
    model = _bidirectional(merge_mode)
    graph = build_graph(model, strict=True)
    ids = {g.id for g in graph.groups}
    if merge_mode in ("sum", "ave", "mul"):  # unit u of both directions is one output channel
        assert "bi/backward+bi/forward" in ids
    else:
        assert {"bi/forward", "bi/backward"} <= ids
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _tokens())
    bi = small.get_layer("bi")
    assert bi.forward_layer.units == bi.backward_layer.units == 3


def test_bidirectional_carries_optimizer_state(tmp_path):
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    check_carry_over(_bidirectional("concat"), optimizer, _tokens(8, 2), _tokens(8, 3), tmp_path)


def test_states_passed_on_are_the_same_units():
    """An encoder's returned states start the decoder: both are pruned as one set of units."""
    inputs = keras.Input((STEPS,), dtype="int32")
    x = L.Embedding(VOCAB, 8, name="embed")(inputs)
    _, h, c = L.LSTM(6, return_state=True, name="encoder")(x)
    y = L.LSTM(6, name="decoder")(x, initial_state=[h, c])
    model = keras.Model(inputs, L.Dense(10, name="head")(y))
    randomize(model, seed=0)
    graph = build_graph(model, strict=True)
    assert graph.group_by_id("decoder+encoder").size == 6
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    check_dead_channels(model, graph, plan, _tokens())


def test_stateful_layer_is_kept_whole_with_the_reason():
    inputs = keras.Input(batch_shape=(2, STEPS, 3))
    x = L.LSTM(4, stateful=True, name="stateful")(inputs)
    graph = build_graph(keras.Model(inputs, L.Dense(2)(x)))
    [kept] = graph.kept_whole
    assert kept.path == "stateful" and "stateful" in kept.reason

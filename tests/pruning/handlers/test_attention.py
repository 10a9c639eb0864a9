"""Issue 11: MultiHeadAttention prunes whole heads (their query/key/value/gate slices and output
rows together), exact and with optimizer state carried over; masks and cross-attention too."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import MaskPlanner, ScoringBatch, build_graph, get_criterion
from tests.pruning.carry_over import check_carry_over, check_dead_channels
from tests.pruning.zoo import randomize

VOCAB, STEPS = 30, 6


def _tokens(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=(n, STEPS)).astype("int32")


def _transformer() -> keras.Model:
    inputs = keras.Input((STEPS,), dtype="int32")
    x = L.Embedding(VOCAB, 12, name="embed")(inputs)
    x = L.Add()([x, L.MultiHeadAttention(4, 3, name="attn")(x, x)])
    h = L.Dense(16, activation="relu", name="ffn1")(x)
    x = L.Add()([x, L.Dense(12, name="ffn2")(h)])
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling1D()(x)))
    randomize(model, seed=0)
    return model


def test_heads_prune_exactly():
    model = _transformer()
    graph = build_graph(model, strict=True)
    assert {(g.id, g.size) for g in graph.groups} == {("embed+ffn2", 12), ("attn/heads", 4), ("ffn1", 16)}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _tokens())
    attn = small.get_layer("attn")
    assert (attn.num_heads, attn.key_dim) == (2, 3)
    assert attn._query_dense.kernel.shape == (6, 2, 3)


def test_optimizer_state_carries_over(tmp_path):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    result = check_carry_over(_transformer(), optimizer, _tokens(8, 2), _tokens(8, 3), tmp_path)
    assert result.model.get_layer("attn").num_heads == 2


def test_cross_attention_with_gate_mask_and_output_shape():
    """Separate query, key and value tensors, a gate, an attention mask and a set output width:
    each input keeps its own channels; the mask is positions, never pruned."""
    tokens = keras.Input((STEPS,), dtype="int32")
    memory = keras.Input((4, 5))
    mask = keras.Input((STEPS, 4), dtype="bool")
    q = L.Embedding(VOCAB, 12, name="embed")(tokens)
    k = L.Dense(7, name="key_proj")(memory)
    v = L.Dense(9, name="value_proj")(memory)
    attn = L.MultiHeadAttention(3, 2, value_dim=4, use_gate=True, output_shape=(8,), name="attn")
    x = attn(q, v, key=k, attention_mask=mask)
    model = keras.Model([tokens, memory, mask], L.Dense(10, name="head")(L.Flatten()(x)))
    randomize(model, seed=0)
    graph = build_graph(model, strict=True)
    sizes = {g.id: g.size for g in graph.groups}
    assert sizes == {"embed": 12, "key_proj": 7, "value_proj": 9, "attn/heads": 3, "attn/output": 8}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    rng = np.random.default_rng(4)
    x = [_tokens(), rng.normal(size=(4, 4, 5)).astype("float32"), rng.random((4, STEPS, 4)) > 0.3]
    small = check_dead_channels(model, graph, plan, x)
    assert small.get_layer("attn").num_heads == 2 and small.get_layer("attn")._output_shape == (4,)


def test_returned_scores_keep_the_layer_whole():
    inputs = keras.Input((STEPS, 8))
    out, scores = L.MultiHeadAttention(2, 4, name="attn")(inputs, inputs, return_attention_scores=True)
    model = keras.Model(inputs, [L.Dense(3)(out), scores])
    [kept] = build_graph(model).kept_whole
    assert kept.path == "attn" and "attention scores" in kept.reason


def test_taylor_scores_heads_on_their_weights_and_apoz_names_them():
    """No tensor carries a head: taylor scores heads by |w * dL/dw| of their weights (and the
    rest by activations), apoz, which only reads activations, names the heads it cannot see."""
    model = _transformer()
    graph = build_graph(model)
    batch = ScoringBatch(_tokens(), np.arange(4) % 10, loss=keras.losses.SparseCategoricalCrossentropy(True))
    scores = dict(zip([g.id for g in graph.groups], get_criterion("taylor")(graph, batch), strict=True))
    assert scores["attn/heads"].shape == (4,) and np.all(scores["attn/heads"] > 0)
    assert len(set(np.round(scores["attn/heads"], 12))) == 4  # the heads are told apart
    plan = MaskPlanner(scope="global").plan(graph, list(scores.values()), 0.5)
    check_dead_channels(model, graph, plan, _tokens())
    with pytest.raises(ValueError, match=r"attn/heads.*weight criterion"):
        get_criterion("apoz")(graph, batch)

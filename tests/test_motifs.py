"""The motif battery: gating, XOR, parity, key-value recall and sequence recall (networks/motifs.py)."""

import numpy as np
import pytest

import plasticity as pl
from plasticity import ConfigError, EquationError
from plasticity.networks.motifs import readout_items
from plasticity.search.runner import search
from tests.backends import assert_protocol_backends_agree


def run(**params):
    return pl.run_protocol("motifs", params, backend="numpy", seed=0)


def test_readout_targets_by_hand():
    items, targets = readout_items("gating")
    assert {(tuple(x), t) for x, t in zip(items, targets)} >= {((1, -1, 1), 1), ((1, -1, -1), -1), ((-1, 1, -1), 1)}
    items, targets = readout_items("xor")
    assert dict(zip(map(tuple, items), targets)) == {(-1, -1): -1, (-1, 1): 1, (1, -1): 1, (1, 1): -1}
    items, targets = readout_items("parity")
    assert len(items) == 8 and targets.sum() == 0 and all(t == np.prod(x) for x, t in zip(items, targets))


@pytest.mark.parametrize("task, linear", [("xor", 0.5), ("parity", 0.5), ("gating", 0.75)])
def test_a_hidden_layer_solves_what_a_linear_readout_cannot(task, linear):
    """A linear readout trained by the delta rule hovers around the least-squares fit of the targets:
    zero for XOR and parity (chance), (a + b) / 2 for gating (right where a = b, a coin toss
    elsewhere, 0.75 on average); no trial gets every item. Random tanh features make every motif
    separable and every trial solves it."""
    flat = run(task=task, hidden=0, epochs=200, trials=16)
    deep = run(task=task, hidden=32, epochs=200, trials=4)
    assert float(flat.chance) == 0.5
    assert abs(float(flat.accuracy.mean()) - linear) < 0.1 and np.all(flat.accuracy < 1.0)
    assert np.all(deep.accuracy == 1.0)


def test_rules_that_are_not_supervised_learn_by_teacher_forcing():
    assert np.all(run(task="xor", rule="perceptron", hidden=16, epochs=50, trials=4).accuracy == 1.0)
    hebb = run(task="xor", rule="hebb", hidden=32, epochs=50, trials=4).accuracy
    assert np.all(hebb >= 0.5)


def test_key_value_memories_on_the_same_pairs():
    """Delta-rule and modern Hopfield memories recall every pair well below their capacity; Hebbian
    outer-product storage degrades with crosstalk as pairs are added; untrained is chance."""
    settings = dict(task="key_value", n=32, trials=4, epochs=50)
    delta = run(**settings, rule="delta", pairs=16)
    assert np.all(delta.recalled == 1.0) and np.allclose(delta.capacity, 0.5)
    assert np.all(run(**settings, memory="modern", pairs=16).recalled == 1.0)
    few, many = run(**settings, rule="hebb", pairs=2), run(**settings, rule="hebb", pairs=32)
    assert np.all(few.accuracy == 1.0) and float(many.accuracy.mean()) < 0.9
    frozen = run(**settings, rule={"equations": ["w += 0 * x_pre"]}, pairs=8)
    assert np.all(frozen.accuracy == 0.5) and np.all(frozen.recalled == 0)  # no answer is a coin toss
    hopfield = run(**settings, memory="hopfield", pairs=2)
    assert float(hopfield.accuracy.mean()) > 0.9


def test_predictive_coding_stores_pairs():
    result = run(task="key_value", memory="pc", n=16, pairs=4, epochs=40, T=10, trials=2)
    assert np.all(result.recalled == 1.0)


def test_sequence_replays_with_an_asymmetric_rule_only():
    replay = run(task="sequence", n=64, length=6, epochs=1, trials=4)
    assert np.all(replay.recalled == 1.0)
    symmetric = run(task="sequence", rule={"equations": ["w += 0.01 * x_post * x_pre"]}, n=64, length=6, epochs=1, trials=4)
    assert float(symmetric.accuracy.mean()) < 0.6  # it stores each pattern as a fixed point and never moves on


def test_motifs_agree_across_backends():
    """The readout with its delayed random layer on numba; torch agrees on every motif through
    SMALL_PARAMS of tests/test_torch_backend.py and the memories' own backend tests."""
    assert_protocol_backends_agree("motifs", {"task": "xor", "hidden": 8, "epochs": 5, "trials": 2},
                                   backends=["numba"], dtypes=("float64",))


@pytest.mark.parametrize("params, error, message", [
    ({"task": "maze"}, ConfigError, "task must be one of 'gating', 'xor'"),
    ({"task": "xor", "rule": "three_factor"}, ConfigError, "reads the modulator"),
    ({"task": "key_value", "memory": "modern", "rule": "hebb"}, ConfigError, "stores by its own rule"),
    ({"task": "xor", "rule": {"equations": ["w += z_post * x_pre"]}}, EquationError, "this motif offers x_pre"),
    ({"task": "sequence", "rule": "delta"}, EquationError, "this motif offers x_pre \\(the pattern before\\)"),
    ({"task": "xor", "hidden": 10**6}, ConfigError, r"hidden must be an integer in \[0, 4096\]"),
    ({"task": "xor", "rule": {"equations": ["theta_post = y_post"]}}, ConfigError, "never writes the weight w"),
])
def test_bad_motif_parameters_are_clear_errors(params, error, message):
    with pytest.raises(error, match=message):
        run(**params)


def test_search_accepts_a_motif_as_its_task(tmp_path):
    document = {
        "task": "motifs", "backend": "numpy", "seed": 0,
        "grammar": {"terms": ["x_pre", "target_post", "e_post"], "constants": [], "max_operations": 1},
        "params": {"task": "xor", "hidden": 16, "epochs": 30, "trials": 2},
        "search": {"learning_rates": [0.05], "score": "accuracy"},
    }
    ranking = search(document, tmp_path / "motif.zarr", workers=0, progress=False).ranking
    best = ranking.score.values[0]
    assert best == 1.0
    assert "w += eta * x_pre * e_post" in set(ranking.equations.values[ranking.score.values == best])
    assert np.nanmin(ranking.score.values) < 0.8  # the battery separates rules

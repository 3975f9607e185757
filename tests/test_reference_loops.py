"""Both backends against the loop reference of ``tests/reference.py``: one network step
written as explicit loops over trials, units and synapses with Python floats, on tiny
networks that exercise every kind of generated kernel (population stages with
reductions, plasticity passes with every synapse reduction, rule variables,
modulators, masks, shared weights on the GEMM and the loop path, custom stages with
transposed feedback)."""

from __future__ import annotations

import numpy as np
import pytest

import plasticity as pl
from plasticity.rules import get_rule
from reference import loop_step
from test_numba_backend import CUSTOM_RULES, MASK, feedback_network, population_network, random_inputs, relative, rule_network

CASES = {
    "oja": lambda: rule_network(get_rule("oja"), n_pre=3, n_post=2),
    "functions": lambda: rule_network(CUSTOM_RULES["functions"], n_pre=3, n_post=2),
    "where": lambda: rule_network(CUSTOM_RULES["where"], n_pre=3, n_post=2),
    "reductions": lambda: rule_network(CUSTOM_RULES["reductions"], n_pre=3, n_post=3),
    "traces_masked": lambda: rule_network(CUSTOM_RULES["modulated_traces"], n_pre=3, n_post=2, mask=MASK[:2, :3]),
    "shared_gemm": lambda: rule_network(get_rule("bcm"), n_pre=3, n_post=2, shared=True),
    "shared_loop": lambda: rule_network(CUSTOM_RULES["reductions"], n_pre=3, n_post=3, shared=True, mask=MASK[:3, :3]),
    "feedback": feedback_network,
    "population": population_network,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backends_match_loop_reference(case, backend):
    network, keys = CASES[case]()
    trials, steps = 2, 4
    inputs = random_inputs(keys, network, trials, steps, seed=4)
    simulation = pl.Simulation(network, trials=trials, backend=backend, seed=1, dtype="float64")
    state = {key: simulation.get(key).astype(np.float64) for key in simulation.shapes}
    for step in range(steps):
        loop_step(network, state, float(step + 1), 1.0, {key: value[step] for key, value in inputs.items()})
    simulation.run(steps, inputs=inputs)
    for key, expected in state.items():
        assert relative(simulation.get(key), expected) < 1e-12, key


def test_loop_reference_float32_close():
    """The float32 numba kernels stay within float32 rounding of the exact loop values."""
    network, keys = CASES["reductions"]()
    trials, steps = 2, 4
    inputs = random_inputs(keys, network, trials, steps, seed=4)
    simulation = pl.Simulation(network, trials=trials, backend="numba", seed=1, dtype="float32")
    state = {key: simulation.get(key).astype(np.float64) for key in simulation.shapes}
    for step in range(steps):
        loop_step(network, state, float(step + 1), 1.0, {key: value[step] for key, value in inputs.items()})
    simulation.run(steps, inputs=inputs)
    for key, expected in state.items():
        assert relative(simulation.get(key), expected) < 1e-5, key

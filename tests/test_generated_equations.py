"""Backends never disagree: reductions of one side's variables, and generated equations.

Random valid rule and population equations (``equation_strategies``) exercising every operator,
function and reduction, rule variables on both sides and the weights, are run for a few steps on
numpy and on every other backend, in float64. Every variable must be within ``RTOL`` (1e-9) of
numpy's, relative to the largest magnitude it reaches (absolute below 1), or every backend must
stop with the same DivergenceError (variable, step and trial). torch, which compiles nothing,
gets 25 examples; numba, which compiles each network's kernels, 2 here and a thousand in
``tests/probe_inputs.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import plasticity as pl
from backends import other_backends
from equation_strategies import compare_outcomes, networks, run_everywhere

BACKENDS = ["numpy", *other_backends()]


def _side_sums(backend: str) -> pl.Simulation:
    pre = pl.Population(3, init={"x": 0.0}, name="pre")
    post = pl.Population(5, ["y = I"], name="post")
    rule = pl.Rule(
        ["theta_post -= sum_post(y_post)", "a_pre = sum_pre(x_pre) + sum_post(theta_post * x_pre)", "w += eta * theta_post * a_pre"],
        params={"eta": 0.01},
    )
    network = pl.Network([pre, post], [pl.Projection(pre, post, rule, source="x", init={"w": 0.1}, name="p")])
    simulation = pl.Simulation(network, backend=backend, trials=2, dtype="float64")
    simulation.set("pre.x", np.arange(6.0).reshape(2, 3))
    return simulation


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reduction_of_one_sides_variable_is_one_number_per_trial(backend):
    """``theta_post -= sum_post(y_post)`` with 3 pre and 5 post units subtracts the sum over the
    post units from each of them (numpy and torch raised raw broadcasting errors); ``sum_pre(x_pre)``
    in a pre equation is the sum over the pre units."""
    simulation = _side_sums(backend)
    simulation.advance(1)
    x = np.arange(6.0).reshape(2, 3)
    y = 0.1 * x.sum(axis=1, keepdims=True) * np.ones((1, 5))  # y = I = w @ x with w = 0.1
    theta = -y.sum(axis=1, keepdims=True) * np.ones((1, 5))
    a = x.sum(axis=1, keepdims=True) + theta.sum(axis=1, keepdims=True) * x
    np.testing.assert_allclose(simulation.get("p.theta_post"), theta, rtol=1e-12)
    np.testing.assert_allclose(simulation.get("p.a_pre"), a, rtol=1e-12)
    np.testing.assert_allclose(simulation.get("p.w"), 0.1 + 0.01 * theta[:, :, None] * a[:, None, :], rtol=1e-12)


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(networks())
def test_generated_equations_agree_on_torch(drawn):
    problems = compare_outcomes(run_everywhere(drawn, ["numpy", "torch"]))
    assert not problems, f"{drawn}\n" + "\n".join(problems)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(networks())
def test_generated_equations_agree_on_numba(drawn):
    problems = compare_outcomes(run_everywhere(drawn, ["numpy", "numba"]))
    assert not problems, f"{drawn}\n" + "\n".join(problems)


def _power_of_constants(backend: str, text: str) -> Any:
    pre = pl.Population(3, init={"x": 1.0}, name="pre")
    post = pl.Population(2, [text], name="post")
    network = pl.Network([pre, post], [pl.Projection(pre, post, None, source="x", init={"w": 0.1}, name="p")])
    simulation = pl.Simulation(network, backend=backend, dtype="float64")
    try:
        simulation.advance(1)
    except pl.DivergenceError as error:
        return error.variable
    return simulation.get("post.y")


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
@pytest.mark.parametrize("text", ["y = (-2) ** 0.5 + I", "y = (0 - 2) ** 0.5 + I"])
def test_a_power_of_a_negative_constant_is_nan_on_numba_too(text):
    """Found by tests/probe_inputs.py: numpy and torch give NaN (a DivergenceError); numba gave
    -1.41 for the first (its source read -2.0 ** 0.5 as -(2.0 ** 0.5)) and a raw
    NumbaNotImplementedError for the second (Python folded the literals to a complex number)."""
    assert _power_of_constants("numpy", text) == "post.y"
    assert _power_of_constants("numba", text) == "post.y"


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_a_function_of_a_where_with_a_constant_condition_runs_on_torch():
    """Found by tests/probe_inputs.py: ``sign(where(beta <= beta + 1.5, 3, y) - 0.25)`` raised a raw
    TypeError on torch (an AttributeError since the shared function table); numpy computes 1."""
    population = pl.Population(2, ["y = sign(where(beta <= beta + 1.5, 3, y) - 0.25)"], init={"y": 0.5},
                               params={"beta": 0.7}, name="p")
    for backend in ("numpy", "torch"):
        simulation = pl.Simulation(pl.Network([population]), backend=backend, dtype="float64")
        simulation.advance(1)
        np.testing.assert_array_equal(simulation.get("p.y"), 1.0)

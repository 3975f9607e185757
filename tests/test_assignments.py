"""The assignment operators ``+=``, ``-=``, ``*=`` and ``=`` of rules and populations on every backend,
per trial and with shared weights, against values written by hand.

Cross-backend tests compare backends with the numpy reference, so an operator that every backend
gets wrong the same way passes them, and one operator on one backend (numba's per-trial ``-=``
behaving as ``+=``) can hide behind a rule that never uses it. Here each operator writes its own
variable, the expected values are computed in the test from the operator's meaning, and the
shared case checks the documented semantics: the right-hand side is averaged over the trials,
then assigned with the operator (DESIGN section 3: a minibatch shares one matrix).
"""

from __future__ import annotations

import numpy as np
import pytest

import plasticity as pl
from plasticity.backends import available_backends

BACKENDS = [
    pytest.param(name, marks=pytest.mark.slow) if name == "numba" else name
    for name in ("numpy", "numba", "torch") if name in available_backends()
]
OPERATORS = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "=": lambda old, new: new + 0 * old}
#: For each operator a variable on a rank-one right-hand side (what torch turns into outer products) and
#: one on a right-hand side that is not a product of one pre and one post factor (the general path).
SYNAPSE = {op: (f"s{index}", f"g{index}") for index, op in enumerate(OPERATORS)}
POST = {op: f"u{index}_post" for index, op in enumerate(OPERATORS)}
POPULATION = {op: f"z{index}" for index, op in enumerate(OPERATORS)}

X = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])  # (trials, pre)
Y = np.array([[2.0, -1.0], [0.5, 4.0]])  # (trials, post)
C = 0.5


def _rule() -> pl.Rule:
    equations = ["w += 0 * x_pre"]
    for op, (separable, general) in SYNAPSE.items():
        equations.append(f"{separable} {op} c * y_post * x_pre")
        equations.append(f"{general} {op} c * (y_post + x_pre) * w")
    equations += [f"{var} {op} c * y_post" for op, var in POST.items()]
    return pl.Rule(equations, params={"c": C})


def _network(shared: bool) -> pl.Network:
    rule = _rule()
    pre = pl.Population(3, init={"x": 0.0}, name="pre")
    post = pl.Population(2, [f"{var} {op} c * y" for op, var in POPULATION.items()],
                         init={"y": 0.0, **{var: 2.0 for var in POPULATION.values()}}, params={"c": C}, name="post")
    init = {var: np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]]) for var in rule.variables() if not var.endswith("_post")}
    init.update({var: np.array([1.5, -0.5]) for var in POST.values()})
    return pl.Network([pre, post], [pl.Projection(pre, post, rule, init=init, shared=shared, name="p")])


@pytest.mark.parametrize("shared", [False, True], ids=["per-trial", "shared"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_assignment_operators_against_hand_values(backend, shared):
    sim = pl.Simulation(_network(shared), trials=2, backend=backend, dtype="float64")
    sim.run(1, inputs={"pre.x": X[None], "post.y": Y[None]})
    w0 = np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]])
    separable = C * Y[:, :, None] * X[:, None, :]  # (trials, post, pre)
    general = C * (Y[:, :, None] + X[:, None, :]) * w0
    if shared:  # the right-hand side averaged over the trials, then assigned
        separable, general = separable.mean(axis=0), general.mean(axis=0)
    # one element by hand, per trial: s1 (-=) at post 0, pre 1, trial 1 is -1 - 0.5 * 0.5 * 0.25 = -1.0625
    if not shared:
        assert sim.get("p.s1")[1, 0, 1] == pytest.approx(-1.0625)
    for op, (separable_var, general_var) in SYNAPSE.items():
        np.testing.assert_allclose(sim.get(f"p.{separable_var}"), np.broadcast_to(OPERATORS[op](w0, separable), sim.get(f"p.{separable_var}").shape),
                                   rtol=1e-12, err_msg=f"{op} on a rank-one right-hand side")
        np.testing.assert_allclose(sim.get(f"p.{general_var}"), np.broadcast_to(OPERATORS[op](w0, general), sim.get(f"p.{general_var}").shape),
                                   rtol=1e-12, err_msg=f"{op} on a general right-hand side")
    for op, var in POST.items():  # unit variables of a rule hold one value per trial
        np.testing.assert_allclose(sim.get(f"p.{var}"), OPERATORS[op](np.array([1.5, -0.5]), C * Y), rtol=1e-12,
                                   err_msg=f"{op} on a rule's post variable")
    for op, var in POPULATION.items():
        np.testing.assert_allclose(sim.get(f"post.{var}"), OPERATORS[op](2.0, C * Y), rtol=1e-12,
                                   err_msg=f"{op} on a population variable")


@pytest.mark.parametrize("backend", BACKENDS)
def test_comparisons_at_ties(backend):
    """``<`` and ``<=`` (``>`` and ``>=``) differ only where both sides are equal: values at the boundary
    (a perceptron starting from w = 0 has I = kappa = 0) decide it, random inputs never do."""
    comparisons = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
    units = pl.Population(3, [f"{name} = where(x {op} 0, 1, 0)" for name, op in comparisons.items()],
                          init={"x": 0.0}, name="units")
    sim = pl.Simulation(pl.Network([units], []), backend=backend, dtype="float64")
    x = np.array([-1.0, 0.0, 1.0])
    sim.run(1, inputs={"units.x": x[None]})
    expected = {"lt": [1, 0, 0], "le": [1, 1, 0], "gt": [0, 0, 1], "ge": [0, 1, 1], "eq": [0, 1, 0], "ne": [1, 0, 1]}
    for name, values in expected.items():
        np.testing.assert_array_equal(sim.get(f"units.{name}")[0], values, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arithmetic_with_a_constant_two_on_the_right(backend):
    """numba writes ``x ** 2`` as ``x * x``; every other operator with a 2 on its right stays itself."""
    units = pl.Population(3, ["a = x + 2", "b = x - 2", "c = x * 2", "d = x / 2", "e = x ** 2"], init={"x": 0.0},
                          name="units")
    sim = pl.Simulation(pl.Network([units], []), backend=backend, dtype="float64")
    sim.run(1, inputs={"units.x": np.array([[-1.0, 0.0, 3.0]])})
    expected = {"a": [1, 2, 5], "b": [-3, -2, 1], "c": [-2, 0, 6], "d": [-0.5, 0, 1.5], "e": [1, 0, 9]}
    for name, values in expected.items():
        np.testing.assert_array_equal(sim.get(f"units.{name}")[0], values, err_msg=name)

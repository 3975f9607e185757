"""Hypothesis strategies for random valid equations, and the cross-backend check they feed.

:func:`networks` draws a small network whose post population and rule are generated: population
equations over the unit variables with every population reduction, rule equations for a rule
variable per post unit (``theta_post``), one per pre unit (``a_pre``), a synapse trace (``e``)
and the weights, with every synapse reduction, a parameter, a modulator, ``t`` and ``dt``. Each
expression may use every operator (``+ - * / **``, unary minus, the six comparisons inside
``where``) and every elementwise function.

Generated expressions are kept away from the places where two correct backends may differ by
more than rounding: a denominator is ``expr ** 2 + c`` with ``c > 0`` (never near zero), and
the argument of a discontinuous function (``sign``, ``heaviside``, a comparison) is offset by a
constant, so that it does not sit exactly on the jump where a fused multiply-add or a
reassociated sum (numba's fastmath) rounds one way and numpy the other. Everything else, the
overflow to ``inf`` and the NaN of a logarithm of a negative number included, is compared.

:func:`run_everywhere` runs a drawn network on numpy and the other backends and
:func:`compare_outcomes` says whether they agree: every variable within :data:`RTOL` of
numpy's, relative to the largest magnitude the variable reaches (float64), or every backend
stopped by the same :class:`~plasticity.errors.DivergenceError` (variable, step and trial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import plasticity as pl
from plasticity.equations.tree import ELEMENTWISE_FUNCTIONS, POPULATION_REDUCTIONS

__all__ = ["RTOL", "Drawn", "expressions", "networks", "run_everywhere", "compare_outcomes"]

#: Largest difference from numpy, relative to the largest magnitude of the variable (float64).
RTOL = 1e-9

_DISCONTINUOUS = ("sign", "heaviside")
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_CONSTANTS = st.sampled_from(["0.5", "1.5", "0.25", "2", "0.75", "1.25", "3"])

#: Names by the domain they vary over, in a synapse equation and in a population equation. The
#: rule variables ``theta_post``, ``a_pre`` and ``e`` are read only where the rule assigns them.
SYNAPSE_NAMES = {
    frozenset(): ("eta", "dt", "t", "m"),
    frozenset({"post"}): ("y_post", "I_post", "theta_post"),
    frozenset({"pre"}): ("x_pre", "a_pre"),
    frozenset({"pre", "post"}): ("w", "e"),
}
UNIT_NAMES = {frozenset(): ("beta", "dt", "t"), frozenset({"unit"}): ("I", "y", "z")}


def _leaves(table: dict[frozenset, tuple[str, ...]], domain: frozenset[str]) -> list[str]:
    return [name for allowed, names in table.items() if allowed <= domain for name in names]


@st.composite
def expressions(draw, domain: frozenset[str], *, synapse: bool, depth: int = 3, reductions: bool = True,
                running: bool = False, names: dict[frozenset, tuple[str, ...]] | None = None) -> str:
    """An expression whose domain lies within ``domain``: a synapse equation's (``pre``/``post``)
    when ``synapse``, else a population equation's (``unit``), over ``names`` (default
    :data:`SYNAPSE_NAMES` or :data:`UNIT_NAMES`). ``reductions`` allows reductions (synapse
    reductions cannot nest); ``running`` allows ``cumsum_post`` (synapse variables only)."""
    names = names or (SYNAPSE_NAMES if synapse else UNIT_NAMES)
    leaves = _leaves(names, domain)
    if depth == 0:
        return draw(st.sampled_from(leaves) | _CONSTANTS)
    inner = dict(synapse=synapse, depth=depth - 1, reductions=reductions, running=running, names=names)

    def sub(within: frozenset[str] = domain, **changes: Any) -> str:
        return draw(expressions(within, **{**inner, **changes}))

    kinds = ["leaf", "leaf", "unary", "binary", "binary", "divide", "function", "where", "discontinuous"]
    if reductions:
        kinds += ["reduce", "reduce"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.sampled_from(leaves) | _CONSTANTS)
    if kind == "unary":
        return f"-({sub()})"
    if kind == "binary":
        return f"({sub()}) {draw(st.sampled_from(['+', '-', '*', '**']))} ({sub()})"
    if kind == "divide":
        return f"({sub()}) / (({sub()}) ** 2 + {draw(_CONSTANTS)})"
    if kind == "function":
        name = draw(st.sampled_from([f for f in ELEMENTWISE_FUNCTIONS if f not in ("where", *_DISCONTINUOUS)]))
        return f"{name}({', '.join(sub() for _ in range(ELEMENTWISE_FUNCTIONS[name]))})"
    if kind == "where":
        comparison = draw(st.sampled_from(_COMPARISONS))
        return f"where({sub()} {comparison} ({sub()}) + {draw(_CONSTANTS)}, {sub()}, {sub()})"
    if kind == "discontinuous":
        return f"{draw(st.sampled_from(_DISCONTINUOUS))}(({sub()}) - {draw(_CONSTANTS)})"
    if not synapse:
        func = draw(st.sampled_from(POPULATION_REDUCTIONS))
        if func == "softmax" and "unit" not in domain:
            func = "sum"
        return f"{func}(({sub(frozenset({'unit'}))}) * {draw(st.sampled_from(['I', 'y', 'z']))})"
    options = ["sum_post", "sum_pre"] + (["cumsum_post"] if running else [])
    func = draw(st.sampled_from(options))
    axis = "pre" if func == "sum_pre" else "post"
    if func == "cumsum_post" and "pre" not in domain:
        func = "sum_post"
    within = domain | {axis} if func != "cumsum_post" else domain
    factor = draw(st.sampled_from(names[frozenset({axis})]))
    return f"{func}(({sub(within, reductions=False, running=False)}) * {factor})"


@dataclass
class Drawn:
    """A generated network's parts, as text a failure report shows."""

    population: list[str]
    rule: list[str]
    ops: list[str]
    shared: bool
    n_pre: int
    n_post: int

    def network(self) -> pl.Network:
        pre = pl.Population(self.n_pre, init={"x": pl.init.uniform(-1.0, 1.0)}, name="pre")
        post = pl.Population(
            self.n_post, self.population, init={"y": pl.init.uniform(-1.0, 1.0), "z": pl.init.uniform(0.0, 1.0)},
            params={"beta": 0.7}, name="post",
        )
        rule = pl.Rule(self.rule, params={"eta": 0.05}, modulators=("m",),
                       init={key: 0.5 for key in ("theta_post", "a_pre", "e") if any(t.startswith(key) for t in self.rule)})
        projection = pl.Projection(pre, post, rule, source="x", target="I", shared=self.shared,
                                   init={"w": pl.init.uniform(-0.5, 0.5)}, name="proj")
        return pl.Network([pre, post], [projection])

    def __str__(self) -> str:
        return (f"population {self.population}\nrule {self.rule}\nshared={self.shared} "
                f"n_pre={self.n_pre} n_post={self.n_post}")


_OPS = st.sampled_from(["=", "+=", "-=", "*="])


@st.composite
def networks(draw, depth: int = 3) -> Drawn:
    """A network of a static pre population, a post population with generated equations and a
    projection with a generated rule (see the module docstring)."""
    unit = frozenset({"unit"})
    population = [f"z = {draw(expressions(unit, synapse=False, depth=depth))}",
                  f"y = {draw(expressions(unit, synapse=False, depth=depth))}"]
    if draw(st.booleans()):
        population.reverse()
    targets = [("theta_post", {"post"}, False), ("a_pre", {"pre"}, False), ("e", {"pre", "post"}, True)]
    targets = [target for target in targets if draw(st.booleans())] + [("w", {"pre", "post"}, True)]
    assigned = {target for target, _, _ in targets}
    names = {domain: tuple(name for name in group if name not in ("theta_post", "a_pre", "e") or name in assigned)
             for domain, group in SYNAPSE_NAMES.items()}
    rule, ops = [], []
    for target, domain, running in targets:
        op = draw(_OPS)
        ops.append(op)
        expression = draw(expressions(frozenset(domain), synapse=True, depth=depth, running=running, names=names))
        rule.append(f"{target} {op} {expression}")
    n_pre, n_post = draw(st.sampled_from([(3, 4), (4, 3), (2, 2)]))
    return Drawn(population, rule, ops, draw(st.booleans()), n_pre, n_post)


def run_everywhere(drawn: Drawn, backends: list[str], *, steps: int = 3, trials: int = 2, seed: int = 0) -> dict[str, Any]:
    """Each backend's outcome: the recorded dataset, or the DivergenceError that stopped it."""
    outcomes: dict[str, Any] = {}
    for backend in backends:
        simulation = pl.Simulation(drawn.network(), backend=backend, seed=seed, trials=trials, dtype="float64")
        simulation.set("proj.m", np.linspace(0.2, 0.9, trials))
        try:
            outcomes[backend] = simulation.run(steps, record=dict.fromkeys(simulation.shapes, 1))
        except pl.DivergenceError as error:
            outcomes[backend] = error
    return outcomes


def compare_outcomes(outcomes: dict[str, Any], reference: str = "numpy") -> list[str]:
    """What differs from ``reference`` (empty when every backend agrees)."""
    expected = outcomes[reference]
    problems = []
    for backend, outcome in outcomes.items():
        if backend == reference:
            continue
        if isinstance(expected, pl.DivergenceError) or isinstance(outcome, pl.DivergenceError):
            got = _describe(outcome)
            if got != _describe(expected):
                problems.append(f"{backend}: {got}; {reference}: {_describe(expected)}")
            continue
        for key in expected.data_vars:
            a, b = outcome[key].values, expected[key].values
            scale = float(np.max(np.abs(b), initial=0.0))
            difference = float(np.max(np.abs(a - b), initial=0.0))
            if not difference <= RTOL * max(scale, 1.0):
                problems.append(f"{backend}: {key} differs by {difference:.3g} (largest magnitude {scale:.3g})")
    return problems


def _describe(outcome: Any) -> str:
    if isinstance(outcome, pl.DivergenceError):
        return f"diverged: {outcome.variable} at step {outcome.step}, trial {outcome.trial}"
    return "finite run"

"""The numpy backend: the reference every other backend is checked against.

It interprets the expression trees with vectorised numpy operations. Synapse
equations are evaluated over blocks of post rows so that no temporary the size
of the weight matrix is made within a step; drives are batched matrix-vector
products.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from plasticity.equations import Binary, Call, Compare, Const, Equation, Name, Node, Reduce, Unary, walk
from plasticity.equations.functions import FUNCTIONS
from plasticity.init import all_finite
from plasticity.network import Network

__all__ = ["build", "NumpyEngine", "evaluate", "per_unit", "BLOCK_ELEMENTS"]

#: Elements of one block of synapse temporaries (trials x rows x pre).
BLOCK_ELEMENTS = 1 << 16

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}


def _softmax(x, axis):
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def evaluate(node: Node, env: Mapping[str, Any], reduced: Mapping[Node, Any] | None = None) -> Any:
    """Value of ``node`` with names looked up in ``env``.

    Population reductions act over the last axis. Synapse reductions must be given,
    already computed, in ``reduced``.
    """
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, Unary):
        return -evaluate(node.operand, env, reduced)
    if isinstance(node, Binary):
        return _BINARY[node.op](evaluate(node.left, env, reduced), evaluate(node.right, env, reduced))
    if isinstance(node, Compare):
        return _COMPARE[node.op](evaluate(node.left, env, reduced), evaluate(node.right, env, reduced))
    if isinstance(node, Call):
        return FUNCTIONS[node.func].numpy(*(evaluate(arg, env, reduced) for arg in node.args))
    if isinstance(node, Reduce):
        if reduced is not None and node in reduced:
            return reduced[node]
        value = evaluate(node.arg, env, reduced)
        if node.func == "softmax":
            return _softmax(value, -1)
        return {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[node.func](value, axis=-1, keepdims=True)
    raise TypeError(f"unknown node {node!r}")


def _assign(target: np.ndarray, op: str, value: Any) -> None:
    if op == "=":
        target[...] = value
    elif op == "+=":
        target += value
    elif op == "-=":
        target -= value
    else:
        target *= value


def per_unit(node: Reduce, total: Any) -> Any:
    """A synapse reduction's total ``(trials, 1, pre)`` (``sum_post``) or ``(trials, post, 1)``
    (``sum_pre``) as a unit-level value: ``(trials, pre)`` or ``(trials, post)`` where the result
    varies over the other side, and ``(trials, 1)`` where it does not. ``sum_post(x_post)`` is one
    number per trial (the sum over post units), so ``theta_post -= sum_post(x_post)`` subtracts it
    from every post unit whatever the sizes of the two sides."""
    other = "pre" if node.axis == "post" else "post"
    if node.axis == "post":
        return total[:, 0, :] if other in node.domain else total[:, 0, :1]
    return total[:, :, 0] if other in node.domain else total[:, :1, 0]


def _synapse_reductions(equation: Equation) -> list[Reduce]:
    found: list[Reduce] = []
    for node in walk(equation.expr):
        if isinstance(node, Reduce) and node.axis in ("pre", "post") and node not in found:
            found.append(node)
    return found


class NumpyEngine:
    """State and step of one network on numpy (see :mod:`plasticity.network` for the step order)."""

    backend = "numpy"

    def __init__(self, network: Network, state: Mapping[str, np.ndarray], *, trials: int, dtype: str, dt: float):
        self.network = network
        self.trials = trials
        self.dtype = np.dtype(dtype)
        self.dt = float(dt)
        # the initial state becomes the engine's (no copy when it is already in the dtype: the simulation hands it over)
        self.arrays = {key: np.ascontiguousarray(value, dtype=self.dtype) for key, value in state.items()}
        self.params = {name: dict(population.params) for name, population in network.populations.items()}

    # state access -----------------------------------------------------------------------
    def get(self, key: str) -> np.ndarray:
        return self.arrays[key].copy()

    def read_into(self, key: str, out: np.ndarray) -> None:
        """Copy ``key`` into ``out`` (a record's slot), with no copy between."""
        np.copyto(out, self.arrays[key])

    def set(self, key: str, value: np.ndarray) -> None:
        self.arrays[key][...] = value

    def set_param(self, key: str, value: float) -> None:
        """Set population parameter ``key`` (``"pop.param"``) for every later step."""
        name, param = key.split(".", 1)
        self.params[name][param] = value

    def nonfinite(self, keys) -> str | None:
        """The first of ``keys`` holding a NaN or infinite value, or None (checked in place, no copy:
        :func:`~plasticity.init.all_finite`)."""
        return next((key for key in keys if not all_finite(self.arrays[key])), None)

    # the step -----------------------------------------------------------------------------
    def step(
        self,
        t: float,
        inputs: Mapping[str, np.ndarray],
        plastic: frozenset[str],
        next_inputs: Mapping[str, np.ndarray] | None = None,
        stages: frozenset[str] | None = None,
    ) -> None:
        """Advance one step at time ``t``; ``plastic`` names projections whose rule runs, ``stages``
        the network stages that run (None: all)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is reported by the simulation
            self._step(t, inputs, plastic, stages)

    def _step(self, t: float, inputs: Mapping[str, np.ndarray], plastic: frozenset[str], stages: frozenset[str] | None) -> None:
        for key, value in inputs.items():
            self.arrays[key][...] = value
        for operation in self.network.program:
            if stages is not None and operation.stage not in stages:
                continue
            if operation.kind == "reset":
                for population, var in operation.targets:
                    self.arrays[f"{population}.{var}"].fill(0.0)
            elif operation.kind == "drive":
                self._drive(operation.projection)
            elif operation.kind == "feedback":
                self._feedback(operation.projection)
            elif operation.kind == "units":
                self._units(operation.population, operation.stage, t)
            elif operation.projection in plastic:
                self._plasticity(operation.projection, t)

    def _drive(self, name: str) -> None:
        projection = self.network.projections[name]
        weights = self.arrays[f"{name}.w"]
        source = self.arrays[f"{projection.pre.name}.{projection.source}"]
        target = self.arrays[f"{projection.post.name}.{projection.target}"]
        if projection.shared:
            target += source @ weights.T
        else:
            target += np.matmul(weights, source[:, :, None])[:, :, 0]

    def _feedback(self, name: str) -> None:
        projection = self.network.projections[name]
        post_var, pre_target = projection.feedback
        weights = self.arrays[f"{name}.w"]
        source = self.arrays[f"{projection.post.name}.{post_var}"]
        target = self.arrays[f"{projection.pre.name}.{pre_target}"]
        if projection.shared:
            target += source @ weights
        else:
            target += np.matmul(source[:, None, :], weights)[:, 0, :]

    def _units(self, name: str, stage: str, t: float) -> None:
        population = self.network.populations[name]
        env: dict[str, Any] = {var: self.arrays[f"{name}.{var}"] for var in population.variables}
        env.update({var: self.arrays[f"{name}.{var}"] for var in self.network.summed[name]})
        env.update(self.params[name])
        env.update(t=t, dt=self.dt)
        for equation in population.stages[stage]:
            _assign(env[equation.var], equation.op, evaluate(equation.expr, env))

    # plasticity ---------------------------------------------------------------------------
    def _side_values(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        projection = self.network.projections[name]
        pre, post = {}, {}
        for values, population, side in ((pre, projection.pre, "pre"), (post, projection.post, "post")):
            for var in projection.rule.unit_reads(side):
                values[f"{var}_{side}"] = self.arrays[f"{population.name}.{var}"]
            for var in projection.variables:
                if var.endswith(f"_{side}"):
                    values[var] = self.arrays[f"{name}.{var}"]
        return pre, post

    def _plasticity(self, name: str, t: float) -> None:
        projection = self.network.projections[name]
        rule = projection.rule
        scalars: dict[str, Any] = dict(rule.params)
        scalars.update(t=t, dt=self.dt)
        modulators = {mod: self.arrays[f"{name}.{mod}"] for mod in rule.modulators}
        pre, post = self._side_values(name)
        for equation in rule.parsed:
            if equation.level == "synapse":
                self._synapse_equation(name, equation, scalars, modulators, pre, post)
                continue
            reduced = {
                node: per_unit(node, value)
                for node, value in self._full_reductions(name, equation, scalars, modulators, pre, post).items()
            }
            env: dict[str, Any] = dict(scalars)
            env.update({mod: value[:, None] for mod, value in modulators.items()})
            env.update(pre if equation.level == "pre" else post)
            target = self.arrays[f"{name}.{equation.target}"]
            _assign(target, equation.op, evaluate(equation.expr, env, reduced))

    def _blocks(self, projection) -> list[slice]:
        rows = max(1, BLOCK_ELEMENTS // max(1, self.trials * projection.pre.n))
        return [slice(start, min(start + rows, projection.post.n)) for start in range(0, projection.post.n, rows)]

    def _block_env(self, name, rows: slice, scalars, modulators, pre, post) -> dict[str, Any]:
        projection = self.network.projections[name]
        env: dict[str, Any] = dict(scalars)
        env.update({mod: value[:, None, None] for mod, value in modulators.items()})
        env.update({key: value[:, None, :] for key, value in pre.items()})
        env.update({key: value[:, rows, None] for key, value in post.items()})
        for var in projection.synapse_variables:
            array = self.arrays[f"{name}.{var}"]
            env[var] = array[None, rows, :] if projection.shared else array[:, rows, :]
        return env

    def _full_reductions(self, name, equation, scalars, modulators, pre, post) -> dict[Node, np.ndarray]:
        """``sum_post`` and ``sum_pre`` over the whole matrix, in a pass over blocks of rows."""
        projection = self.network.projections[name]
        reductions = [node for node in _synapse_reductions(equation) if node.func != "cumsum_post"]
        if not reductions:
            return {}
        totals = {}
        for node in reductions:
            shape = (self.trials, 1, projection.pre.n) if node.axis == "post" else (self.trials, projection.post.n, 1)
            totals[node] = np.zeros(shape, dtype=self.dtype)
        for rows in self._blocks(projection):
            env = self._block_env(name, rows, scalars, modulators, pre, post)
            for node in reductions:
                value = np.broadcast_to(evaluate(node.arg, env), (self.trials, rows.stop - rows.start, projection.pre.n))
                if node.axis == "post":
                    totals[node] += value.sum(axis=1, keepdims=True)
                else:
                    totals[node][:, rows, :] = value.sum(axis=2, keepdims=True)
        return totals

    def _synapse_equation(self, name, equation, scalars, modulators, pre, post) -> None:
        projection = self.network.projections[name]
        totals = self._full_reductions(name, equation, scalars, modulators, pre, post)
        running = [node for node in _synapse_reductions(equation) if node.func == "cumsum_post"]
        carry = {node: np.zeros((self.trials, 1, projection.pre.n), dtype=self.dtype) for node in running}
        target = self.arrays[f"{name}.{equation.var}"]
        mask = projection.mask
        for rows in self._blocks(projection):
            env = self._block_env(name, rows, scalars, modulators, pre, post)
            shape = (self.trials, rows.stop - rows.start, projection.pre.n)
            reduced = {
                node: (value if node.axis == "post" else value[:, rows, :]) for node, value in totals.items()
            }
            for node in running:
                terms = np.broadcast_to(evaluate(node.arg, env), shape)
                reduced[node] = np.cumsum(terms, axis=1) + carry[node]
                carry[node] += terms.sum(axis=1, keepdims=True)
            value = evaluate(equation.expr, env, reduced)
            block = target[rows, :] if projection.shared else target[:, rows, :]
            if projection.shared:
                value = np.broadcast_to(value, shape).mean(axis=0)
            _assign(block, equation.op, value)
            if mask is not None:
                block *= mask[rows, :]


def build(network: Network, state: Mapping[str, np.ndarray], *, trials: int, dtype: str, dt: float, device: str | None = None) -> NumpyEngine:
    """A numpy engine for ``network`` starting from ``state``."""
    return NumpyEngine(network, state, trials=trials, dtype=dtype, dt=dt)

"""Tasks the generic kernel scores candidates on: linear association and principal components.

Both run a linear layer ``y = W x`` (:mod:`plasticity.search.kernel`), so every candidate of a
search is evaluated by one compiled kernel, with the same data for every candidate. Each
task declares its parameters with specs (:mod:`plasticity.params`), the local terms it offers
a rule and the derived terms it defines (``e_post = target_post - y_post``), and turns final
weights into a score per trial (higher is better) and, where the task measures one, a capacity.

``association``: ``p = round(load * n)`` random pairs of +-1 patterns ``x`` (``n`` units) and
+-1 targets (``m`` units), shown in random order; the output learns ``W x_k ~ t_k``. The score
is the fraction of the targets' variance the recall ``W x_k`` explains over the stored pairs,
``1 - sum |W x_k - t_k|^2 / sum |t_k|^2`` (1: perfect recall; 0: no better than zero; chance
for random weights is negative). The capacity is the number of pairs recalled with every
output's sign right, per input unit (at most ``load``). The delta rule (Widrow & Hoff 1960)
reaches 1 for ``p <= n`` (the patterns are then linearly independent); Hebbian storage has
crosstalk between the pairs.

``pca``: Gaussian inputs whose covariance has eigenvalues ``1, decay, decay**2, ...`` along a
random orthonormal basis (as the ``pca`` protocol draws them), one linear output. The score is
``|cos(w, PC1)| * min(|w|, 1/|w|)``: Oja's rule (Oja 1982) converges to the unit-norm first
component and scores 1; plain Hebbian growth aligns with PC1 but its norm explodes, and a
decaying rule loses its norm, so both score low.

``reward``: a three-factor task (the global modulator as third factor; Fremaux & Gerstner 2016,
Front. Neural Circuits 9:85). ``p = round(load * n)`` +-1 inputs ``x_k`` each have a right
+-1 output pattern ``t_k`` (``m`` units). At each step an input is shown with an output pattern
tried on it, ``action_post``: the right one or its opposite ``-t_k``, with equal chance (explored
at random, not read from the output), and the global ``reward`` is 1 if it was the right one and
0 otherwise. The free output ``y_post = W x`` learns to give the right one. A rule that does not
read the reward sees ``t_k`` and ``-t_k`` equally often on every input and cannot tell them apart:
it scores chance. The score is the fraction of output signs right over the inputs
(``sign(W x_k) = t_k``; chance 0.5); the capacity the inputs with every output right, per input
unit. Reward-gated Hebbian storage ``reward * x_pre * action_post`` stores the rewarded pairs
(with crosstalk); the reward-gated delta rule ``reward * x_pre * (action_post - y_post)`` learns
them all for ``p <= n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Mapping

import numpy as np

from plasticity.errors import ConfigError
from plasticity.networks.pca import covariance_with_spectrum
from plasticity.params import Int, Real, check_params, specs_of
from plasticity.search.kernel import LayerData
from plasticity.search.polynomial import Polynomial

__all__ = ["Problem", "FastTask", "FAST_TASKS", "association", "pca", "reward", "get_fast_task"]

#: Most samples a task holds per trial; longer runs cycle through them in random order.
MAX_ITEMS = 5000


@dataclass(frozen=True)
class Problem:
    """A task drawn for one search: the data every candidate sees and how final weights score.

    ``score(weights)`` maps ``(..., trials, m, n)`` weights to ``(..., trials)`` scores and
    ``capacity(weights)`` likewise (NaN where the task measures none)."""

    data: LayerData
    score: Callable[[np.ndarray], np.ndarray]
    capacity: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FastTask:
    """A task the generic kernel runs: its name, the terms it offers, derived terms and the
    function that draws a :class:`Problem` from parameters and a seed."""

    name: str
    terms: tuple[str, ...]
    definitions: Mapping[str, str]
    draw: Callable[..., Problem]

    def defaults(self) -> dict[str, Any]:
        import inspect

        return {name: p.default for name, p in inspect.signature(self.draw).parameters.items() if name != "seed"}

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The task's defaults updated with ``params``, each checked against its spec."""
        defaults = self.defaults()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ConfigError(
                f"task {self.name!r} has no parameter {', '.join(map(repr, unknown))}; valid parameters: "
                f"{', '.join(sorted(defaults))}"
            )
        return {**defaults, **check_params(specs_of(self.draw, list(defaults)), dict(params))}

    def problem(self, params: Mapping[str, Any], seed: int) -> Problem:
        return self.draw(**self.check(params), seed=seed)

    def definition_polynomials(self) -> dict[str, Polynomial]:
        from plasticity.equations import SynapseContext, parse_equations

        polynomials = {}
        for name, text in self.definitions.items():
            (equation,) = parse_equations([f"{name} = {text}"], SynapseContext())
            polynomials[name] = Polynomial.from_node(equation.expr)
        return polynomials


def _order(rng: np.random.Generator, trials: int, items: int, steps: int) -> np.ndarray:
    return rng.integers(0, items, size=(trials, steps))


def _layer_task(n: int, m: int, trials: int, load: float, seed: int) -> tuple[np.random.Generator, int]:
    """The generator of a one-layer task's data and its ``round(load * n)`` items (at least one),
    after checking that its weights fit the generic kernel's batch."""
    if n * m * trials > 2**24:
        raise ConfigError(f"n * m * trials must be at most {2**24:,} weights; got {n * m * trials:,}")
    return np.random.default_rng(np.random.SeedSequence(seed)), max(1, round(load * n))


def _initial(rng: np.random.Generator, trials: int, m: int, n: int, scale: float) -> np.ndarray:
    return rng.standard_normal((trials, m, n)) * (scale / np.sqrt(n))


def association(
    *,
    n: Annotated[int, Int(1, 1024)] = 16,
    m: Annotated[int, Int(1, 1024)] = 16,
    load: Annotated[float, Real(0, 4, low_open=True)] = 0.5,
    steps: Annotated[int, Int(1, 1_000_000)] = 2000,
    trials: Annotated[int, Int(1, 1000)] = 8,
    init_scale: Annotated[float, Real(0, 10)] = 0.1,
    seed: int = 0,
) -> Problem:
    """Linear association of ``round(load * n)`` +-1 pattern pairs (see the module docstring)."""
    rng, pairs = _layer_task(n, m, trials, load, seed)
    patterns = np.where(rng.random((trials, pairs, n)) < 0.5, -1.0, 1.0)
    targets = np.where(rng.random((trials, pairs, m)) < 0.5, -1.0, 1.0)
    data = LayerData(patterns, targets, _order(rng, trials, pairs, steps), _initial(rng, trials, m, n, init_scale))

    def recall(weights: np.ndarray) -> np.ndarray:
        return np.einsum("...rmn,rpn->...rpm", weights, patterns)

    def score(weights: np.ndarray) -> np.ndarray:
        error = ((recall(weights) - targets) ** 2).sum(axis=(-1, -2))
        return 1.0 - error / (targets**2).sum(axis=(-1, -2))

    def capacity(weights: np.ndarray) -> np.ndarray:
        right = (np.sign(recall(weights)) == targets).all(axis=-1)
        return right.sum(axis=-1) / n

    return Problem(data, score, capacity)


def pca(
    *,
    n: Annotated[int, Int(2, 1024)] = 16,
    decay: Annotated[float, Real(0, 1, low_open=True, high_open=True)] = 0.5,
    steps: Annotated[int, Int(1, 1_000_000)] = 2000,
    trials: Annotated[int, Int(1, 1000)] = 8,
    init_scale: Annotated[float, Real(0, 10)] = 0.5,
    seed: int = 0,
) -> Problem:
    """The first principal component of Gaussian inputs, one linear output (module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    items = min(steps, MAX_ITEMS)
    patterns = np.empty((trials, items, n))
    first = np.empty((trials, n))
    for trial in range(trials):
        eigenvalues, components = covariance_with_spectrum(n, decay, rng)
        patterns[trial] = (rng.standard_normal((items, n)) * np.sqrt(eigenvalues)) @ components
        first[trial] = components[0]
    order = np.tile(np.arange(steps), (trials, 1)) if items == steps else _order(rng, trials, items, steps)
    data = LayerData(patterns, np.zeros((trials, items, 1)), order, _initial(rng, trials, 1, n, init_scale))

    def score(weights: np.ndarray) -> np.ndarray:
        w = weights[..., 0, :]
        norm = np.linalg.norm(w, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = np.abs((w * first).sum(-1)) / norm
            return np.where(norm > 0, cosine * np.minimum(norm, 1.0 / norm), 0.0)

    def capacity(weights: np.ndarray) -> np.ndarray:
        return np.full(weights.shape[:-2], np.nan)

    return Problem(data, score, capacity)


def reward(
    *,
    n: Annotated[int, Int(1, 1024)] = 16,
    m: Annotated[int, Int(1, 1024)] = 4,
    load: Annotated[float, Real(0, 4, low_open=True)] = 0.5,
    steps: Annotated[int, Int(1, 1_000_000)] = 2000,
    trials: Annotated[int, Int(1, 1000)] = 8,
    init_scale: Annotated[float, Real(0, 10)] = 0.1,
    seed: int = 0,
) -> Problem:
    """Reward-modulated association of ``round(load * n)`` inputs with their right output (module docstring)."""
    rng, pairs = _layer_task(n, m, trials, load, seed)
    inputs = np.where(rng.random((trials, pairs, n)) < 0.5, -1.0, 1.0)
    right = np.where(rng.random((trials, pairs, m)) < 0.5, -1.0, 1.0)
    # items 0..p-1: the right output tried, rewarded; items p..2p-1: its opposite, not rewarded
    patterns = np.concatenate([inputs, inputs], axis=1)
    actions = np.concatenate([right, -right], axis=1)
    rewards = np.concatenate([np.ones((trials, pairs, 1)), np.zeros((trials, pairs, 1))], axis=1)
    data = LayerData(patterns, actions, _order(rng, trials, 2 * pairs, steps), _initial(rng, trials, m, n, init_scale),
                     rewards)

    def signs_right(weights: np.ndarray) -> np.ndarray:
        return np.sign(np.einsum("...rmn,rpn->...rpm", weights, inputs)) == right

    def score(weights: np.ndarray) -> np.ndarray:
        return signs_right(weights).mean(axis=(-1, -2))

    def capacity(weights: np.ndarray) -> np.ndarray:
        return signs_right(weights).all(axis=-1).sum(axis=-1) / n

    return Problem(data, score, capacity)


FAST_TASKS: dict[str, FastTask] = {
    "association": FastTask("association", ("x_pre", "y_post", "target_post", "e_post", "w"),
                            {"e_post": "target_post - y_post"}, association),
    "pca": FastTask("pca", ("x_pre", "y_post", "w"), {}, pca),
    # the kernel holds the output tried in its target slot
    "reward": FastTask("reward", ("x_pre", "y_post", "action_post", "reward", "w"), {"action_post": "target_post"}, reward),
}


def get_fast_task(name: str) -> FastTask | None:
    return FAST_TASKS.get(name)

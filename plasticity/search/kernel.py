"""One compiled kernel for every polynomial rule: a linear layer learning with rules given as data.

A candidate rule of the search is ``w += eta * P`` with ``P`` a polynomial of local terms
(:mod:`plasticity.search.grammar`). Generating and compiling a numba kernel per candidate
(what the engine does for a rule) would cost seconds each; here the rule is data instead:
its monomials as exponents of the pre-side terms, the post-side terms and ``w``, and their
coefficients. :func:`run_linear_layer` evaluates many candidates over many trials in one
call of one kernel, compiled once (and cached on disk) for the whole search.

The network is the one the engine runs for a rule on a linear layer: ``n`` inputs ``x``
drive ``m`` outputs ``y = W x`` (``I``), each output also holds a ``target``, and a global
modulator ``reward`` (one number per trial and step, the same for every synapse: the third
factor of a three-factor rule) is set with each item. A step is the
engine's step: the inputs are set, ``y = W x`` with the weights before the update, then
every weight is updated. Each step's update is applied row by row as a polynomial in ``w``
(Horner's scheme over the powers of ``w``), whose coefficients are sums of products of
post-side and pre-side factors read from per-unit tables of powers; the pass that writes a
row also computes that row's drive for the next step (one pass over ``W`` per step, as the
engine's fused kernel does). A weight leaving ``[-bound, bound]`` (or becoming NaN) marks the
trial diverged at that step and ends it.

Tests compare the result with the engine's generated kernel for the same rule
(``plasticity.Simulation`` on numba and numpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np
from numba import prange

from plasticity.errors import ConfigError
from plasticity.search.polynomial import Polynomial

__all__ = ["LayerData", "PRE_TERMS", "POST_TERMS", "GLOBAL_TERMS", "encode", "run_linear_layer"]

#: Terms the kernel reads on each side of a synapse, in slot order.
PRE_TERMS = ("x_pre",)
POST_TERMS = ("y_post", "target_post")
#: Global modulators the kernel reads (one value per trial and item).
GLOBAL_TERMS = ("reward",)
#: The engine's fast-math flags: no ``nnan``/``ninf``, so that divergence stays visible.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@dataclass(frozen=True)
class LayerData:
    """What every candidate of a search sees, shared so that candidates are compared on the same
    data: ``patterns (trials, items, n)`` and ``targets (trials, items, m)`` (float64), the item
    shown at each step ``order (trials, steps)``, the initial weights ``w0 (trials, m, n)`` and
    the global modulators set with each item ``modulators (trials, items, len(GLOBAL_TERMS))``
    (``None``: zero)."""

    patterns: np.ndarray
    targets: np.ndarray
    order: np.ndarray
    w0: np.ndarray
    modulators: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return self.order.shape[1]

    @property
    def trials(self) -> int:
        return self.w0.shape[0]


def encode(polynomials: Sequence[Polynomial], etas: Sequence[float]) -> dict[str, np.ndarray]:
    """The kernel's arrays for ``w += eta * P`` of each polynomial with its learning rate:
    coefficients times ``eta`` ``(candidates, monomials)``, exponents of the pre-side terms
    ``(candidates, monomials, len(PRE_TERMS))``, post-side and global terms, and the monomials grouped by
    their power of ``w`` (``start[c, p]`` is the first monomial of power ``p``; monomials are
    sorted by that power). Unused monomial slots have coefficient 0."""
    if len(polynomials) != len(etas):
        raise ValueError("one learning rate per polynomial")
    slots = {name: ("pre", i) for i, name in enumerate(PRE_TERMS)}
    slots.update({name: ("post", i) for i, name in enumerate(POST_TERMS)})
    slots.update({name: ("global", i) for i, name in enumerate(GLOBAL_TERMS)})
    slots["w"] = ("w", 0)
    count = max(1, max((len(p.terms) for p in polynomials), default=1))
    max_power = max((dict(m).get("w", 0) for p in polynomials for m in p.terms), default=0)
    size = len(polynomials)
    coef = np.zeros((size, count))
    pre = np.zeros((size, count, len(PRE_TERMS)), np.int64)
    post = np.zeros((size, count, len(POST_TERMS)), np.int64)
    glob = np.zeros((size, count, len(GLOBAL_TERMS)), np.int64)
    start = np.zeros((size, max_power + 2), np.int64)
    for c, (polynomial, eta) in enumerate(zip(polynomials, etas)):
        ordered = sorted(polynomial.terms.items(), key=lambda item: dict(item[0]).get("w", 0))
        powers = []
        for q, (monomial, value) in enumerate(ordered):
            coef[c, q] = float(value) * eta
            power = 0
            for name, exponent in monomial:
                if name not in slots:
                    raise ConfigError(
                        f"the linear layer offers the terms {', '.join((*PRE_TERMS, *POST_TERMS, *GLOBAL_TERMS, 'w'))}; "
                        f"a rule reads {name!r}"
                    )
                side, index = slots[name]
                if side == "pre":
                    pre[c, q, index] = exponent
                elif side == "post":
                    post[c, q, index] = exponent
                elif side == "global":
                    glob[c, q, index] = exponent
                else:
                    power = exponent
            powers.append(power)
        powers = np.asarray(powers, np.int64)
        for p in range(max_power + 2):
            start[c, p] = int(np.searchsorted(powers, p, side="left")) if len(powers) else 0
        start[c, max_power + 1] = len(ordered)
    return {"coef": coef, "pre": pre, "post": post, "glob": glob, "start": start}


@numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy", nogil=True)
def _powers(values, out):
    """``out[e] = values ** e`` for every row ``e`` of ``out``."""
    for j in range(values.shape[0]):
        out[0, j] = 1.0
    for e in range(1, out.shape[0]):
        for j in range(values.shape[0]):
            out[e, j] = out[e - 1, j] * values[j]


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH, error_model="numpy", nogil=True)
def _linear_layer(patterns, targets, modulators, order, w0, coef, pre_exp, post_exp, glob_exp, start, steps, bound,
                  weights, diverged_at):
    candidates = coef.shape[0]
    trials, m, n = w0.shape
    powers = start.shape[1] - 1
    top = max(pre_exp.max(), post_exp.max(), glob_exp.max()) + 1 if coef.size else 1
    for job in prange(candidates * trials):
        c = job // trials
        r = job - c * trials
        w = w0[r].copy()
        y = np.zeros(m)
        x_pow = np.empty((top, n))
        y_pow = np.empty((top, m))
        t_pow = np.empty((top, m))
        g_pow = np.empty((top, modulators.shape[2]))
        scaled = np.empty(coef.shape[1])  # this step's coefficients times their global factors
        acc = np.empty(n)
        diverged_at[c, r] = -1
        if steps > 0:  # the first step's drive; later ones are computed with the update
            x = patterns[r, order[r, 0]]
            for i in range(m):
                total = 0.0
                for j in range(n):
                    total += w[i, j] * x[j]
                y[i] = total
        for s in range(steps):
            k = order[r, s]
            _powers(patterns[r, k], x_pow)
            _powers(y, y_pow)
            _powers(targets[r, k], t_pow)
            _powers(modulators[r, k], g_pow)
            for q in range(start[c, powers]):
                a = coef[c, q]
                for g in range(modulators.shape[2]):
                    a *= g_pow[glob_exp[c, q, g], g]
                scaled[q] = a
            following = patterns[r, order[r, s + 1]] if s + 1 < steps else patterns[r, k]
            largest = 0.0
            total = 0.0
            for i in range(m):
                for j in range(n):
                    acc[j] = 0.0
                for p in range(powers - 1, -1, -1):  # Horner: acc = acc * w + (terms of w ** p)
                    if p < powers - 1:
                        for j in range(n):
                            acc[j] *= w[i, j]
                    for q in range(start[c, p], start[c, p + 1]):
                        a = scaled[q] * y_pow[post_exp[c, q, 0], i] * t_pow[post_exp[c, q, 1], i]
                        e = pre_exp[c, q, 0]
                        for j in range(n):
                            acc[j] += a * x_pow[e, j]
                drive = 0.0
                for j in range(n):
                    value = w[i, j] + acc[j]
                    w[i, j] = value
                    drive += value * following[j]
                    largest = max(largest, abs(value))
                y[i] = drive  # the next step's y = W x with the updated weights
                total += drive
            if not largest <= bound or total != total:
                diverged_at[c, r] = s
                break
        weights[c, r] = w


def run_linear_layer(
    data: LayerData,
    polynomials: Sequence[Polynomial],
    etas: Sequence[float],
    *,
    steps: int | None = None,
    bound: float = 1e4,
) -> tuple[np.ndarray, np.ndarray]:
    """Run every rule ``w += eta * P`` on every trial of ``data`` for ``steps`` steps (default:
    all of ``data.order``). Returns the final weights ``(candidates, trials, m, n)`` and the step
    at which each trial diverged (a weight outside ``[-bound, bound]`` or NaN; ``-1``: it did not),
    ``(candidates, trials)``; a diverged trial's weights are those of the step it diverged."""
    steps = data.steps if steps is None else steps
    if not 0 <= steps <= data.steps:
        raise ConfigError(f"steps must be in [0, {data.steps}] (the steps the data orders); got {steps}")
    arrays = encode(polynomials, etas)
    trials, m, n = data.w0.shape
    weights = np.empty((len(polynomials), trials, m, n))
    diverged_at = np.empty((len(polynomials), trials), np.int64)
    modulators = data.modulators
    if modulators is None:
        modulators = np.zeros(data.patterns.shape[:2] + (len(GLOBAL_TERMS),))
    if len(polynomials):
        _linear_layer(
            np.ascontiguousarray(data.patterns, np.float64), np.ascontiguousarray(data.targets, np.float64),
            np.ascontiguousarray(modulators, np.float64), np.ascontiguousarray(data.order, np.int64),
            np.ascontiguousarray(data.w0, np.float64), arrays["coef"], arrays["pre"], arrays["post"], arrays["glob"],
            arrays["start"], steps, float(bound), weights, diverged_at,
        )
    return weights, diverged_at

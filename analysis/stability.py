"""Fixed points of a rule's expected update and their stability, computed on the engine.

A rule learning from inputs drawn from a distribution follows, for small learning rates, the
average of its update over that distribution (the ODE method: Kushner & Clark 1978; Oja 1982):
``dW/dt = F(W) = E_x[dW(W, x)]``. Here the distribution is a finite set of equally weighted
``samples`` (an exact covariance can be built from a few: ``±sqrt(n lambda_i) e_i`` has covariance
``sum_i lambda_i e_i e_i^T``), and ``F`` is one step of the engine: the samples are the trials
of a network whose weights are shared (a minibatch, whose update the engine averages over
trials), so ``F`` is computed by the same code that learns, for any rule and backend.

- :class:`ExpectedUpdate`: ``F(W)`` for a rule, a set of samples and the output units'
  equation (default linear, ``y = I``); the rule's other variables are put back to their
  initial values before every evaluation (the fixed points are those of the weights), except
  those named in ``variables`` (a sliding threshold such as BCM's ``theta_post``), which join
  the weights in the state: one value per unit, the same for every sample, whose expected
  update is the mean over the samples of its update.
- :func:`fixed_point`: a root of ``F`` from a start (``scipy.optimize.root``), which finds
  unstable fixed points too, unlike iterating the rule.
- :func:`stability`: the Jacobian of ``F`` at a point by central finite differences, its
  eigenvalues (per step of the rule, so they scale with its learning rate) and whether the
  point is stable (every real part below ``-tol``), a saddle (signs mixed) or unstable.

Oracle (tests): Oja's rule on inputs of covariance ``C`` (eigenvalues ``lambda_1 > ... >
lambda_n``, eigenvectors ``e_i``) has fixed points ``±e_i``; the Jacobian at ``e_i`` has
eigenvalues ``eta (lambda_j - lambda_i)`` along ``e_j`` and ``-2 eta lambda_i`` along ``e_i``,
so only ``±e_1`` is stable and the others are saddles (Oja 1982). BCM's rule with its sliding
threshold in the state, on patterns presented with equal probability, has stable selective fixed
points (the neuron responds to one pattern only) and an unstable non-selective one, when the
threshold is faster than the weights (Bienenstock, Cooper & Munro 1982; Intrator & Cooper 1992;
Castellani et al. 1999); the tests derive the fixed points and eigenvalues.

References
----------
- E. Oja (1982), A simplified neuron model as a principal component analyzer. J. Math. Biol. 15:267-273.
- E. Oja, J. Karhunen (1985), On stochastic approximation of the eigenvectors and eigenvalues of
  the expectation of a random matrix. J. Math. Anal. Appl. 106:69-84.
- E. L. Bienenstock, L. N. Cooper, P. W. Munro (1982), Theory for the development of neuron
  selectivity. J. Neurosci. 2:32-48.
- N. Intrator, L. N. Cooper (1992), Objective function formulation of the BCM theory of visual
  cortical plasticity. Neural Networks 5:3-17.
- G. C. Castellani, N. Intrator, H. Shouval, L. N. Cooper (1999), Solutions of the BCM learning
  rule in a network of lateral interacting nonlinear neurons. Network 10:111-121.
- L. C. Udeigwe, P. W. Munro, G. B. Ermentrout (2017), Emergent dynamical properties of the BCM
  learning rule. J. Math. Neurosci. 7:2 (a threshold slower than the weights: oscillations).
- H. J. Kushner, D. S. Clark (1978), Stochastic Approximation Methods for Constrained and
  Unconstrained Systems. Springer.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import root

from plasticity.errors import ConfigError
from plasticity.network import Network
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = ["ExpectedUpdate", "fixed_point", "stability"]


class ExpectedUpdate:
    """``F(W)``: the mean update of ``rule``'s weights over ``samples`` ``(K, n)``, for ``m`` output
    units computing ``output`` (an equation over their summed input ``I``).

    Parameters: ``rule`` (a :class:`~plasticity.rule.Rule` or a library name), ``samples``, ``m``,
    ``output`` (default ``"y = I"``), ``variables`` (rule variables of one value per unit, such as
    ``"theta_post"``, that belong to the state; default none), ``backend`` and ``dtype`` (default
    ``"float64"``: finite differences need the precision).

    Without ``variables`` the state is the weight matrix, shape ``(m, n)``; with them it is a flat
    vector of length ``size``: the weights row by row, then each variable's values (``names`` labels
    each entry, e.g. ``w[0,1]``, ``theta_post[0]``). ``F`` returns an array of the state's shape.
    """

    def __init__(self, rule: Rule | str, samples: np.ndarray, *, m: int = 1, output: str = "y = I",
                 variables: tuple[str, ...] | list[str] = (), backend: str = "numpy", dtype: str = "float64"):
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[0] < 1 or not np.isfinite(samples).all():
            raise ConfigError(f"samples must be a finite array (samples, inputs); got shape {samples.shape}")
        self.samples = samples
        count, n = samples.shape
        source = Population(n, init={"x": 0.0}, name="input")
        target = Population(m, [output], name="output")
        projection = Projection(source, target, rule, source="x", shared=True, init={"w": 0.0}, name="weights")
        self.simulation = Simulation(Network([source, target], [projection]), trials=count, backend=backend, dtype=dtype)
        unit_variables = sorted(key.split(".", 1)[1] for key in self.simulation.shapes
                                if key.startswith("weights.") and key.endswith(("_pre", "_post")))
        for name in variables:
            if name not in unit_variables:
                raise ConfigError(
                    f"variables names {name!r}, which is not a per-unit variable of the rule; "
                    f"valid: {', '.join(unit_variables) or '(none)'}"
                )
        self.variables = tuple(variables)
        # Where each variable's values sit in the state vector, after the weights.
        self._slices: dict[str, slice] = {}
        start = m * n
        for name in self.variables:
            length = self.simulation.shapes[f"weights.{name}"][-1]
            self._slices[name] = slice(start, start + length)
            start += length
        self.size = start
        self.shape = (m, n) if not self.variables else (self.size,)
        self.names = [f"w[{i},{j}]" for i in range(m) for j in range(n)] + [
            f"{name}[{k}]" for name, where in self._slices.items() for k in range(where.stop - where.start)]
        self._weights = (m, n)
        self._initial = {key: self.simulation.get(key) for key in self.simulation.shapes
                         if key.startswith("weights.") and key != "weights.w" and key[len("weights."):] not in self.variables}
        self._inputs = {"input.x": samples[None]}

    def __call__(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        if state.size != self.size:
            raise ConfigError(f"the state has {self.size} entries ({', '.join(self.names[:3])}, ...), got {state.size}")
        weights = state[: self._weights[0] * self._weights[1]].reshape(self._weights)
        for key, value in self._initial.items():
            self.simulation.set(key, value)
        self.simulation.set("weights.w", weights)
        count = len(self.samples)
        for name, where in self._slices.items():
            self.simulation.set(f"weights.{name}", np.broadcast_to(state[where], (count, where.stop - where.start)))
        self.simulation.advance(1, inputs=self._inputs)
        change = [self.simulation.get("weights.w").astype(np.float64).reshape(-1) - weights.reshape(-1)]
        for name, where in self._slices.items():
            change.append(self.simulation.get(f"weights.{name}").astype(np.float64).mean(axis=0) - state[where])
        return np.concatenate(change).reshape(self.shape)


def fixed_point(update: ExpectedUpdate, start: np.ndarray, *, tol: float = 1e-10) -> np.ndarray:
    """A root of ``update`` (``F(W) = 0``) found from ``start`` by Powell's hybrid method; a
    ConfigError when none is found within ``tol``."""
    found = root(lambda flat: update(flat).reshape(-1), np.asarray(start, dtype=np.float64).reshape(-1), method="hybr", tol=tol)
    residual = float(np.abs(update(found.x)).max())
    if residual > max(tol, 1e-8):
        raise ConfigError(f"no fixed point found from this start (|F| = {residual:.3g} after {found.nfev} evaluations)")
    return found.x.reshape(update.shape)


def stability(update: ExpectedUpdate, point: np.ndarray, *, step: float = 1e-5, tol: float = 1e-9) -> xr.Dataset:
    """The Jacobian of ``update`` at ``point`` (central differences of size ``step``), its
    eigenvalues (sorted by real part, largest first) and the point's kind: ``"stable"`` (every
    real part < ``-tol``), ``"saddle"`` (some > ``tol`` and some < ``-tol``), ``"unstable"``
    (every real part > ``tol``) or ``"marginal"`` (otherwise)."""
    flat = np.asarray(point, dtype=np.float64).reshape(-1)
    jacobian = np.empty((flat.size, flat.size))
    for k in range(flat.size):
        shift = np.zeros_like(flat)
        shift[k] = step
        jacobian[:, k] = (update(flat + shift).reshape(-1) - update(flat - shift).reshape(-1)) / (2 * step)
    eigenvalues = np.linalg.eigvals(jacobian)
    eigenvalues = eigenvalues[np.argsort(-eigenvalues.real)]
    real = eigenvalues.real
    if (real < -tol).all():
        kind = "stable"
    elif (real > tol).all():
        kind = "unstable"
    elif (real > tol).any() and (real < -tol).any():
        kind = "saddle"
    else:
        kind = "marginal"
    return xr.Dataset(
        {
            "jacobian": (("row", "column"), jacobian, {"long_name": "dF_i/dW_j of the expected update (per step)"}),
            "eigenvalue_real": ("mode", real, {"long_name": "real part of the Jacobian's eigenvalues"}),
            "eigenvalue_imag": ("mode", eigenvalues.imag),
            "point": (("post", "pre"), flat.reshape(update.shape)) if not update.variables else ("entry", flat),
        },
        coords={"entry": update.names} if update.variables else None,
        attrs={"kind": kind, "step": step, "tol": tol},
    )

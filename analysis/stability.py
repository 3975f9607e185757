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
  initial values before every evaluation (the fixed points are those of the weights).
- :func:`fixed_point`: a root of ``F`` from a start (``scipy.optimize.root``), which finds
  unstable fixed points too, unlike iterating the rule.
- :func:`stability`: the Jacobian of ``F`` at a point by central finite differences, its
  eigenvalues (per step of the rule, so they scale with its learning rate) and whether the
  point is stable (every real part below ``-tol``), a saddle (signs mixed) or unstable.

Oracle (tests): Oja's rule on inputs of covariance ``C`` (eigenvalues ``lambda_1 > ... >
lambda_n``, eigenvectors ``e_i``) has fixed points ``±e_i``; the Jacobian at ``e_i`` has
eigenvalues ``eta (lambda_j - lambda_i)`` along ``e_j`` and ``-2 eta lambda_i`` along ``e_i``,
so only ``±e_1`` is stable and the others are saddles (Oja 1982).

References
----------
- E. Oja (1982), A simplified neuron model as a principal component analyzer. J. Math. Biol. 15:267-273.
- E. Oja, J. Karhunen (1985), On stochastic approximation of the eigenvectors and eigenvalues of
  the expectation of a random matrix. J. Math. Anal. Appl. 106:69-84.
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
    ``output`` (default ``"y = I"``), ``backend`` and ``dtype`` (default ``"float64"``: finite
    differences need the precision).
    """

    def __init__(self, rule: Rule | str, samples: np.ndarray, *, m: int = 1, output: str = "y = I",
                 backend: str = "numpy", dtype: str = "float64"):
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[0] < 1 or not np.isfinite(samples).all():
            raise ConfigError(f"samples must be a finite array (samples, inputs); got shape {samples.shape}")
        self.samples = samples
        count, n = samples.shape
        source = Population(n, init={"x": 0.0}, name="input")
        target = Population(m, [output], name="output")
        projection = Projection(source, target, rule, source="x", shared=True, init={"w": 0.0}, name="weights")
        self.simulation = Simulation(Network([source, target], [projection]), trials=count, backend=backend, dtype=dtype)
        self.shape = (m, n)
        self._initial = {key: self.simulation.get(key) for key in self.simulation.shapes
                         if key.startswith("weights.") and key != "weights.w"}
        self._inputs = {"input.x": samples[None]}

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64).reshape(self.shape)
        for key, value in self._initial.items():
            self.simulation.set(key, value)
        self.simulation.set("weights.w", weights)
        self.simulation.advance(1, inputs=self._inputs)
        return self.simulation.get("weights.w").astype(np.float64) - weights


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
            "point": (("post", "pre"), flat.reshape(update.shape)),
        },
        attrs={"kind": kind, "step": step, "tol": tol},
    )

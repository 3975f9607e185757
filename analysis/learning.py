"""Learning capacity against theory and against cost, over stores of ``learn.capacity``.

- :func:`cover_probability`: Cover's (1965) count, the probability that p random points in
  general position in N dimensions with random +-1 labels are linearly separable (by a plane
  through the origin): C(p, N) = 2^(1 - p) sum_{k=0}^{N-1} binom(p - 1, k). It is 1 up to
  p = N, 1/2 at p = 2N and falls to 0 beyond: the capacity 2N of the perceptron.
- :func:`cover_curve`: that probability against load p / N, as the success curve a perfect
  learner (one that separates every separable data set) would draw.
- :func:`time_to_criterion`: quantiles of the epochs trials took to meet the criterion, and the
  fraction that met it, for every point of a sweep (a phase diagram over learning rate and load
  is :func:`~plasticity.analysis.capacity.success_curve` of a sweep over both).
- :func:`learning_cost`: per rule the critical load with its bootstrap interval
  (:func:`~plasticity.analysis.capacity.critical_load`), the rule's operations per synapse per
  step (``rule.cost()``), the capacity per operation, and the operations per synapse spent
  learning (items shown until the criterion was met, times operations per step) at every load.

References
----------
- T. M. Cover (1965), Geometrical and statistical properties of systems of linear inequalities
  with applications in pattern recognition. IEEE Trans. Electron. Comput. 14:326-334.
- E. Gardner (1988), The space of interactions in neural network models. J. Phys. A 21:257-270.
"""

from __future__ import annotations

import warnings
from math import comb
from typing import Sequence

import numpy as np
import xarray as xr

from plasticity.analysis.capacity import critical_load
from plasticity.errors import ConfigError

__all__ = ["cover_probability", "cover_curve", "learning_cost", "time_to_criterion"]


def cover_probability(p: int, n: int) -> float:
    """C(p, N) = 2^(1 - p) sum_{k=0}^{N-1} binom(p - 1, k), exact in integers then rounded once."""
    if isinstance(p, bool) or isinstance(n, bool) or int(p) != p or int(n) != n or p < 1 or n < 1:
        raise ConfigError(f"p and n must be positive integers; got p={p!r}, n={n!r}")
    p, n = int(p), int(n)
    if p <= n:
        return 1.0
    return sum(comb(p - 1, k) for k in range(n)) / 2 ** (p - 1)


def cover_curve(n: int, loads: Sequence[float]) -> xr.DataArray:
    """Cover's probability of separability against ``load`` (p = round(load * n) points, ``n`` dimensions)."""
    loads = np.asarray(loads, dtype=float)
    values = [cover_probability(max(1, int(round(load * n))), n) for load in loads]
    return xr.DataArray(values, coords={"load": loads}, dims="load", name="cover",
                        attrs={"long_name": "P(separable), Cover (1965)", "units": "1"})


def learning_cost(
    store: xr.Dataset,
    *,
    level: float = 0.5,
    load_dim: str = "load",
    over: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Capacity against cost from a ``learn.capacity`` sweep over ``load`` (and e.g. ``rule``).

    Returns, for every dimension other than the load and the samples (``trial``, ``repeat``):
    ``critical_load``, ``ci_low``, ``ci_high`` (the load at which the fraction of trials meeting
    the criterion falls below ``level``, with its bootstrap interval); ``operations_per_synapse``
    (per step); ``capacity_per_operation`` (critical load / operations per synapse per step); and
    against load ``operations_to_learn``: the median over trials that met the criterion of the
    operations per synapse they spent (items shown times operations per step; NaN where none met).
    Points not done (``done`` false) are left out.
    """
    for name in ("met", "presentations", "operations_per_synapse"):
        if name not in store:
            raise ConfigError(f"store has no variable {name!r}; learning_cost reads a learn.capacity sweep")
    met = store["met"].astype(float)
    if "done" in store:
        met = met.where(store["done"])
    result = critical_load(met, level=level, load_dim=load_dim, over=over, n_boot=n_boot, ci=ci, seed=seed)
    samples = [d for d in store["operations_per_synapse"].dims if d not in result.dims]
    operations = store["operations_per_synapse"].max(samples)  # the same at every point of a rule
    result["operations_per_synapse"] = operations.assign_attrs(long_name="operations per synapse per step (rule.cost())")
    result["capacity_per_operation"] = (result["critical_load"] / operations).assign_attrs(
        long_name="critical load per operation per synapse per step")
    spent = (store["presentations"] * store["operations_per_synapse"]).where(store["met"])
    sample_dims = [d for d in spent.dims if d in (over or ("trial", "repeat"))]
    result["operations_to_learn"] = spent.median(sample_dims).assign_attrs(
        long_name="operations per synapse spent to meet the criterion (median over trials that met it)")
    return result


def time_to_criterion(store: xr.Dataset, *, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                      over: Sequence[str] = ("trial", "repeat")) -> xr.Dataset:
    """The distribution of epochs to criterion over the trials (and repeats) that met it:
    ``epochs`` (its ``quantiles``, NaN where none met) and ``met`` (the fraction that did), for
    every other dimension of a ``learn.capacity`` store."""
    if "epochs_to_criterion" not in store:
        raise ConfigError("store has no variable 'epochs_to_criterion'; time_to_criterion reads a learn.capacity store")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ConfigError(f"quantiles must lie in [0, 1]; got {list(quantiles)!r}")
    epochs = store["epochs_to_criterion"]
    if "done" in store:
        epochs = epochs.where(store["done"])
    dims = [d for d in over if d in epochs.dims]
    if not dims:
        raise ConfigError(f"none of {list(over)} is a dimension of the store; dimensions: {', '.join(map(str, epochs.dims))}")
    met = epochs.notnull().mean(dims)
    with warnings.catch_warnings():  # a point where no trial met the criterion has NaN quantiles, as documented
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        quantile = epochs.quantile(list(quantiles), dim=dims, skipna=True)
    return xr.Dataset({
        "epochs": quantile.assign_attrs(long_name="epochs to criterion"),
        "met": met.assign_attrs(long_name="fraction of trials that met the criterion"),
    })

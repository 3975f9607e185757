"""Learning dynamics: label each recorded trajectory with the regime it ends in.

:func:`regime` reads a trajectory of a positive size, usually the weight norm recorded by a
protocol that learns (``learn.capacity`` with ``record_every``, or ``|w|`` of a recording), and
labels it, checking in this order:

- ``"diverged"``: a value is NaN or infinite, or exceeds ``diverge_at`` (default 1e6) times the
  largest of the first value and ``scale``;
- ``"collapse"``: the last value is below ``collapse_below`` (default 1e-3) times the largest value
  of the trajectory (the weights decayed to zero);
- ``"oscillating"``: over the last half the values change direction at least ``turns`` (default
  40%) of the time with a relative spread (standard deviation / mean) above ``tolerance``;
- ``"converged"``: over the last quarter the values vary by less than ``tolerance`` (default 1e-3)
  relative to their mean;
- ``"runaway"``: over the last half the values increase at least 90% of the time and grow by a
  factor of at least ``growth`` (default 1.5): unbounded growth, as plain Hebbian learning;
- ``"transient"``: none of these: still moving when the recording ended.

:func:`growth_rate` is the slope of the log of the values over the last half (per record): the
exponent of exponential growth (plain Hebb: ``eta * lambda_1`` per step).

The thresholds are the defaults of the keyword arguments; every check is on the last half or
quarter of the trajectory, so a trajectory should be recorded long enough to settle.

References
----------
- E. Oja (1982), J. Math. Biol. 15:267-273 (Hebb's growth, Oja's normalisation).
- B. Widrow, M. E. Hoff (1960) (the delta rule is stable for learning rates below 2 / |x|^2).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["REGIMES", "regime", "growth_rate", "boundedness"]

REGIMES = ("diverged", "collapse", "oscillating", "converged", "runaway", "transient")


def _label(values: np.ndarray, *, scale: float, diverge_at: float, collapse_below: float, tolerance: float,
           turns: float, growth: float) -> str:
    if not np.isfinite(values).all() or np.abs(values).max() > diverge_at * max(abs(values[0]), scale):
        return "diverged"
    values = np.abs(values)
    if values[-1] < collapse_below * values.max():
        return "collapse"
    half, quarter = values[len(values) // 2 :], values[3 * len(values) // 4 :]
    steps = np.diff(half)
    moving = steps[steps != 0]
    mean = half.mean()
    if moving.size >= 2 and mean > 0:
        changes = (np.sign(moving[1:]) != np.sign(moving[:-1])).mean()
        if changes >= turns and half.std() / mean > tolerance:
            return "oscillating"
    if quarter.mean() > 0 and (quarter.max() - quarter.min()) / quarter.mean() < tolerance:
        return "converged"
    if steps.size and (steps > 0).mean() >= 0.9 and half[-1] >= growth * half[0]:
        return "runaway"
    return "transient"


def regime(
    trajectory: xr.DataArray,
    *,
    dim: str = "epoch",
    scale: float = 1.0,
    diverge_at: float = 1e6,
    collapse_below: float = 1e-3,
    tolerance: float = 1e-3,
    turns: float = 0.4,
    growth: float = 1.5,
) -> xr.DataArray:
    """The regime (one of :data:`REGIMES`, module docstring) of every trajectory along ``dim``."""
    if dim not in trajectory.dims:
        raise ConfigError(f"dim {dim!r} is not a dimension of the trajectory; dimensions: {', '.join(map(str, trajectory.dims))}")
    if trajectory.sizes[dim] < 4:
        raise ConfigError(f"a trajectory needs at least 4 records along {dim!r} to be labelled; got {trajectory.sizes[dim]}")
    options = dict(scale=scale, diverge_at=diverge_at, collapse_below=collapse_below, tolerance=tolerance, turns=turns, growth=growth)
    return xr.apply_ufunc(
        lambda row: _label(np.asarray(row, dtype=float), **options), trajectory, input_core_dims=[[dim]],
        vectorize=True, output_dtypes=[object],
    ).rename("regime")


def growth_rate(trajectory: xr.DataArray, *, dim: str = "epoch") -> xr.DataArray:
    """Slope of log|values| against the record index over the last half of ``dim`` (per record)."""
    if dim not in trajectory.dims:
        raise ConfigError(f"dim {dim!r} is not a dimension of the trajectory; dimensions: {', '.join(map(str, trajectory.dims))}")

    def slope(row: np.ndarray) -> float:
        half = np.abs(np.asarray(row, dtype=float)[len(row) // 2 :])
        if half.size < 2 or not np.isfinite(half).all() or (half <= 0).any():
            return np.nan
        return float(np.polyfit(np.arange(half.size), np.log(half), 1)[0])

    return xr.apply_ufunc(slope, trajectory, input_core_dims=[[dim]], vectorize=True).rename("growth_rate")


def boundedness(trajectory: xr.DataArray, *, dim: str = "epoch", growth: float = 1.5) -> xr.Dataset:
    """Whether a size (a weight norm) stays bounded over a run, and how fast it grows when not.

    ``bounded`` is false where :func:`regime` says ``runaway`` or ``diverged`` (with ``growth``);
    ``growth_rate`` is :func:`growth_rate` (per record, the exponent of exponential growth) and
    ``peak`` the largest value along ``dim``.
    """
    labels = regime(trajectory, dim=dim, growth=growth)
    return xr.Dataset({
        "bounded": ~labels.isin(["runaway", "diverged"]),
        "growth_rate": growth_rate(trajectory, dim=dim),
        "peak": np.abs(trajectory).max(dim),
        "regime": labels,
    })

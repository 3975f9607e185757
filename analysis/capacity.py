"""Capacity curves: success against load, the critical load with a bootstrap interval, finite-size comparison.

Inputs are boolean (or 0/1) ``success`` arrays with a load dimension (e.g. from
``hopfield.capacity`` swept over ``load``) and one or more sample dimensions
(``trial``, ``repeat``) whose entries are independent trials. Every other
dimension (``n``, ``rule``, ...) is kept, so one call handles a whole sweep.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["success_curve", "critical_load", "finite_size"]

SAMPLE_DIMS = ("trial", "repeat")


def _sample_dims(success: xr.DataArray, over: Sequence[str] | None, load_dim: str) -> list[str]:
    if load_dim not in success.dims:
        raise ConfigError(f"load_dim {load_dim!r} is not a dimension of success; dimensions: {', '.join(map(str, success.dims))}")
    dims = [d for d in (SAMPLE_DIMS if over is None else over) if d in success.dims]
    if over is not None and len(dims) != len(over):
        missing = sorted(set(over) - set(success.dims))
        raise ConfigError(f"over names {missing} that are not dimensions of success; dimensions: {', '.join(map(str, success.dims))}")
    if not dims:
        raise ConfigError(f"success needs a sample dimension to average over (one of {', '.join(SAMPLE_DIMS)}, or pass over=)")
    return dims


def success_curve(success: xr.DataArray, *, load_dim: str = "load", over: Sequence[str] | None = None) -> xr.Dataset:
    """Mean success against load with its standard error and the number of trials.

    ``over`` lists the sample dimensions averaged over (default: those of ``trial`` and
    ``repeat`` present). Returns ``success`` (mean), ``stderr`` (binomial standard error
    sqrt(p (1 - p) / k)) and ``count`` (k), with every other dimension kept.
    """
    dims = _sample_dims(success, over, load_dim)
    values = success.astype(float)
    count = values.notnull().sum(dims)
    mean = values.mean(dims)
    stderr = np.sqrt(mean * (1.0 - mean) / count.clip(min=1))
    return xr.Dataset({"success": mean, "stderr": stderr, "count": count})


def _crossing(curves: np.ndarray, loads: np.ndarray, level: float) -> np.ndarray:
    """Load at the first downward crossing of ``level`` along the last axis (linear interpolation); NaN if none."""
    above = curves >= level
    step = above[..., :-1] & ~above[..., 1:]
    has = step.any(-1)
    k = np.argmax(step, axis=-1)
    lo = np.take_along_axis(curves, k[..., None], -1)[..., 0]
    hi = np.take_along_axis(curves, (k + 1)[..., None], -1)[..., 0]
    a0, a1 = loads[k], loads[np.minimum(k + 1, loads.size - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = a0 + (lo - level) * (a1 - a0) / (lo - hi)
    return np.where(has, value, np.nan)


def critical_load(
    success: xr.DataArray,
    *,
    level: float = 0.5,
    load_dim: str = "load",
    over: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """The load at which mean success first falls below ``level``, with a bootstrap interval.

    The curve of mean success against load is interpolated linearly between the last
    load at or above ``level`` and the next one below it. The interval resamples the
    trials at every load independently (with replacement) ``n_boot`` times and takes the
    central ``ci`` percentile range. Returns ``critical_load``, ``ci_low``, ``ci_high``;
    NaN where the curve never crosses ``level`` inside the loads measured.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1); got {level!r}")
    if not 0.0 < ci < 1.0:
        raise ConfigError(f"ci must be in (0, 1); got {ci!r}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1; got {n_boot!r}")
    dims = _sample_dims(success, over, load_dim)
    success = success.sortby(load_dim)
    keep = [d for d in success.dims if d not in dims and d != load_dim]
    stacked = success.astype(float).transpose(*keep, load_dim, *dims)
    loads = np.asarray(success[load_dim].values, dtype=float)
    data = stacked.values.reshape(int(np.prod([success.sizes[d] for d in keep], dtype=int)), loads.size, -1)
    samples = data.shape[-1]
    rng = np.random.default_rng(seed)
    estimate = _crossing(np.nanmean(data, -1), loads, level)
    low = np.empty(data.shape[0])
    high = np.empty(data.shape[0])
    for g in range(data.shape[0]):
        picks = rng.integers(0, samples, size=(n_boot, loads.size, samples))
        boot = np.nanmean(np.take_along_axis(np.broadcast_to(data[g], picks.shape), picks, -1), -1)
        values = _crossing(boot, loads, level)
        values = values[np.isfinite(values)]
        low[g], high[g] = (np.quantile(values, [(1 - ci) / 2, (1 + ci) / 2]) if values.size else (np.nan, np.nan))
    shape = [success.sizes[d] for d in keep]
    coords = {d: success[d] for d in keep if d in success.coords}
    attrs = {"level": level, "ci": ci, "n_boot": n_boot}
    return xr.Dataset(
        {
            "critical_load": (keep, estimate.reshape(shape), {"long_name": f"load at success {level}"}),
            "ci_low": (keep, low.reshape(shape)),
            "ci_high": (keep, high.reshape(shape)),
        },
        coords=coords,
        attrs=attrs,
    )


def finite_size(
    success: xr.DataArray,
    *,
    n_dim: str = "n",
    exponent: float = 0.5,
    level: float = 0.5,
    load_dim: str = "load",
    over: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Critical load for every network size along ``n_dim`` and its extrapolation to N -> infinity.

    Fits alpha_c(N) = alpha_inf + c N^(-exponent) by least squares over the sizes
    (weighted equally) and returns the ``critical_load`` dataset of :func:`critical_load`
    plus ``alpha_inf`` and ``slope`` (c) for every other kept dimension.
    """
    if n_dim not in success.dims:
        raise ConfigError(f"n_dim {n_dim!r} is not a dimension of success; dimensions: {', '.join(map(str, success.dims))}")
    result = critical_load(success, level=level, load_dim=load_dim, over=over, n_boot=n_boot, ci=ci, seed=seed)
    x = np.asarray(success[n_dim].values, dtype=float) ** (-exponent)
    y = result["critical_load"].transpose(..., n_dim)
    flat = y.values.reshape(-1, x.size)
    alpha = np.full(flat.shape[0], np.nan)
    slope = np.full(flat.shape[0], np.nan)
    for g, row in enumerate(flat):
        ok = np.isfinite(row)
        if ok.sum() >= 2:
            slope[g], alpha[g] = np.polyfit(x[ok], row[ok], 1)
    rest = [d for d in y.dims if d != n_dim]
    shape = [y.sizes[d] for d in rest]
    result["alpha_inf"] = (rest, alpha.reshape(shape), {"long_name": "critical load extrapolated to N -> infinity"})
    result["slope"] = (rest, slope.reshape(shape), {"long_name": f"coefficient of N^-{exponent}"})
    result.attrs["exponent"] = exponent
    return result

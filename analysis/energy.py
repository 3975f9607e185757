"""Predictive-coding energy and checks that it decreases where theory says it must.

The energy of a hierarchical predictive coding network (Rao & Ballard 1999; Whittington &
Bogacz 2017; Bogacz 2017, J. Math. Psychol. 76:198-211) is the sum of squared prediction
errors, ``E = sum_l |e_l|^2 / 2``. Inference is gradient descent on ``E`` over the free
values, so for a small enough rate ``gamma`` the energy never increases during inference.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["pc_energy", "energy_increases", "decreases_monotonically", "first_violation"]


def pc_energy(dataset: xr.Dataset, errors: Sequence[str] | None = None) -> xr.DataArray:
    """``sum_l |e_l|^2 / 2`` over the recorded error variables, per remaining dimension (time, trial).

    ``errors`` names the error variables (default: every recorded variable named ``"*.e"``, as
    recorded by :class:`~plasticity.simulation.Simulation` from the layers of a
    :func:`~plasticity.networks.predictive_coding.pc_network`). Each is summed over its unit
    dimension, the last one.
    """
    names = list(errors) if errors is not None else [name for name in dataset.data_vars if str(name).endswith(".e")]
    if not names:
        raise ConfigError("pc_energy needs error variables; none named '*.e' are in the dataset and none were given")
    missing = [name for name in names if name not in dataset.data_vars]
    if missing:
        raise ConfigError(f"pc_energy: {', '.join(missing)} not in the dataset; variables: {', '.join(map(str, dataset.data_vars))}")
    total = None
    for name in names:
        error = dataset[name]
        term = 0.5 * (error * error).sum(error.dims[-1])
        total = term if total is None else total + term
    total.name = "energy"
    total.attrs = {"long_name": "predictive-coding energy", "units": "squared error / 2"}
    return total


def energy_increases(energy: xr.DataArray, dim: str, rtol: float = 1e-6) -> xr.DataArray:
    """Number of steps along ``dim`` where ``energy`` rises by more than ``rtol`` times its size.

    Zero everywhere means the energy decreased monotonically (within rounding, which
    ``rtol`` allows for: float32 runs need about 1e-6, float64 about 1e-12).
    """
    if dim not in energy.dims:
        raise ConfigError(f"dim {dim!r} is not a dimension of the energy; its dimensions: {', '.join(map(str, energy.dims))}")
    if not np.isfinite(rtol) or rtol < 0:
        raise ConfigError(f"rtol must be a non-negative number, got {rtol!r}")
    change = energy.diff(dim)
    scale = np.abs(energy).max(dim)
    return (change > rtol * scale).sum(dim)


def decreases_monotonically(energy: xr.DataArray, dim: str, rtol: float = 1e-6) -> bool:
    """Whether ``energy`` never rises along ``dim`` (see :func:`energy_increases`)."""
    return bool((energy_increases(energy, dim, rtol) == 0).all())


def first_violation(energy: xr.DataArray, dim: str, rtol: float = 1e-6) -> dict | None:
    """The first rise of ``energy`` along ``dim`` by more than ``rtol`` times its size (a Lyapunov
    function must never rise), or None when there is none.

    Returns ``{"step": the coordinate along dim after the rise, "index": its position, "size": the
    rise, "relative": the rise over the trajectory's size, **the other coordinates}``: the earliest
    along ``dim``, then the first in the order of the other dimensions (a trial, say).
    """
    if dim not in energy.dims:
        raise ConfigError(f"dim {dim!r} is not a dimension of the energy; its dimensions: {', '.join(map(str, energy.dims))}")
    if not np.isfinite(rtol) or rtol < 0:
        raise ConfigError(f"rtol must be a non-negative number, got {rtol!r}")
    ordered = energy.transpose(dim, ...)
    change = ordered.diff(dim)
    scale = np.abs(ordered).max(dim)
    rises = (change > rtol * scale).values
    if not rises.any():
        return None
    flat = rises.reshape(rises.shape[0], -1)
    index = int(np.argmax(flat.any(axis=1)))
    column = int(np.argmax(flat[index]))
    position = np.unravel_index(column, rises.shape[1:]) if rises.ndim > 1 else ()
    others = {name: ordered[name].values[k].item() if name in ordered.coords else int(k)
              for name, k in zip(ordered.dims[1:], position)}
    size = float(change.values[(index, *position)])
    coordinate = ordered[dim].values[index + 1].item() if dim in ordered.coords else index + 1
    return {"step": coordinate, "index": index + 1, "size": size,
            "relative": size / float(scale.values[position] if position else scale.values), **others}

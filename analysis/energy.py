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

__all__ = ["pc_energy", "energy_increases", "decreases_monotonically"]


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

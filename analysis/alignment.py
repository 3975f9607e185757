"""Alignment of learned weight vectors with reference directions (e.g. principal components)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["alignment"]


def alignment(
    weights: xr.DataArray,
    components: np.ndarray | xr.DataArray,
    *,
    unit_dim: str,
    input_dim: str,
) -> xr.DataArray:
    """Absolute cosine between output ``i``'s weight vector and reference direction ``i``.

    Parameters
    ----------
    weights:
        Weights with a dimension ``unit_dim`` over outputs and ``input_dim`` over inputs
        (any other dimensions, such as ``time`` and ``trial``, are kept).
    components:
        Reference directions, shape ``(k, inputs)`` with ``k`` at most the number of outputs;
        row ``i`` is compared with output ``i``.

    Returns
    -------
    DataArray with ``unit_dim`` and ``input_dim`` replaced by ``component`` (length ``k``),
    values in [0, 1]; 1 means parallel or anti-parallel.
    """
    reference = np.asarray(components, dtype=np.float64)
    if reference.ndim != 2:
        raise ConfigError(f"components must be a 2-d array (k, inputs), got shape {reference.shape}")
    for dim in (unit_dim, input_dim):
        if dim not in weights.dims:
            raise ConfigError(f"weights have no dimension {dim!r}; dimensions: {', '.join(map(str, weights.dims))}")
    k, inputs = reference.shape
    if weights.sizes[input_dim] != inputs or weights.sizes[unit_dim] < k:
        raise ConfigError(
            f"components of shape {reference.shape} do not fit weights with {weights.sizes[unit_dim]} outputs "
            f"and {weights.sizes[input_dim]} inputs"
        )
    learned = weights.isel({unit_dim: slice(0, k)}).astype(np.float64)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    directions = xr.DataArray(reference, dims=(unit_dim, input_dim))
    dot = (learned * directions).sum(input_dim)
    norm = np.sqrt((learned**2).sum(input_dim))
    cosine = np.abs(dot) / norm.where(norm > 0)
    return cosine.fillna(0.0).rename({unit_dim: "component"}).drop_vars(unit_dim, errors="ignore").rename("alignment")

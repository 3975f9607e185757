"""Alignments: of learned weight vectors with reference directions (e.g. principal components), and
of a network's output change with its target (target alignment, Song et al. 2024).

References
----------
- Y. Song, B. Millidge, T. Salvatori, T. Lukasiewicz, Z. Xu, R. Bogacz (2024), Inferring neural
  activity before plasticity as a foundation for learning beyond backpropagation. Nat. Neurosci.
  27:348-358 (target alignment: Fig. 3 and Methods).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["alignment", "target_alignment"]


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


def target_alignment(before: np.ndarray, after: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per example, the cosine between the change of the output, ``after - before``, and the
    direction the output should move, ``target - before`` (Song et al. 2024).

    ``before`` and ``after`` are a network's outputs on the same inputs before and after one weight
    update, ``target`` the targets of that update; all of shape ``(examples, outputs)``. 1 means the
    update moved every output straight towards its target, 0 orthogonally, -1 away. An example whose
    output did not change, or whose output already equals its target, has no direction: NaN.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (before, after, target)]
    if arrays[0].ndim != 2 or any(a.shape != arrays[0].shape for a in arrays):
        raise ConfigError(
            "before, after and target must be arrays of one shape (examples, outputs), got "
            + ", ".join(str(a.shape) for a in arrays)
        )
    before, after, target = arrays
    change, wanted = after - before, target - before
    norms = np.linalg.norm(change, axis=1) * np.linalg.norm(wanted, axis=1)
    dot = np.einsum("ij,ij->i", change, wanted)
    return np.divide(dot, norms, out=np.full_like(dot, np.nan), where=norms > 0)

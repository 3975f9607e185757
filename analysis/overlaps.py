"""Overlap trajectories, energies along a trajectory and basins of attraction of associative memories.

The overlap m_mu = xi_mu . s / N of a state with stored pattern mu is the order
parameter of Amit, Gutfreund and Sompolinsky (1985); the basin of a pattern is
the largest fraction of flipped cue bits from which it is still retrieved.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError

__all__ = ["overlap_trajectory", "energy_trajectory", "basin_size"]


def _trajectory(trajectory: Any) -> np.ndarray:
    t = np.asarray(trajectory.values if isinstance(trajectory, xr.DataArray) else trajectory, dtype=np.float64)
    if t.ndim != 3:
        raise ConfigError(f"trajectory must be (sweep, trial, unit); got shape {t.shape}")
    return t


def overlap_trajectory(trajectory: Any, patterns: Any) -> xr.DataArray:
    """m(t) = xi_mu . s(t) / N for every recorded sweep, trial and stored pattern.

    ``trajectory`` is (sweep, trial, unit), e.g. ``retrieve(..., record=True).trajectory``;
    ``patterns`` is (pattern, unit). Returns a DataArray (sweep, trial, pattern).
    """
    t = _trajectory(trajectory)
    x = np.asarray(patterns, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != t.shape[2]:
        raise ConfigError(f"patterns must be (pattern, {t.shape[2]}); got shape {x.shape}")
    m = np.einsum("sti,pi->stp", t, x) / t.shape[2]
    return xr.DataArray(
        m, dims=("sweep", "trial", "pattern"),
        coords={"sweep": np.arange(t.shape[0]), "trial": np.arange(t.shape[1]), "pattern": np.arange(x.shape[0])},
        name="overlap",
    )


def energy_trajectory(memory: Any, trajectory: Any) -> xr.DataArray:
    """The energy ``memory.energy(s)`` of every recorded state, a DataArray (sweep, trial)."""
    t = _trajectory(trajectory)
    e = memory.energy(t.reshape(-1, t.shape[2])).reshape(t.shape[:2])
    return xr.DataArray(
        e, dims=("sweep", "trial"), coords={"sweep": np.arange(t.shape[0]), "trial": np.arange(t.shape[1])},
        name="energy",
    )


def basin_size(
    memory: Any,
    *,
    patterns: Sequence[int] | None = None,
    flips: Sequence[float] | None = None,
    trials: int = 20,
    threshold: float = 0.95,
    level: float = 0.5,
    update: str = "async",
    max_sweeps: int = 100,
    seed: int = 0,
    backend: str = "numba",
) -> xr.Dataset:
    """Basin of attraction of stored patterns of a binary memory (Hopfield or dense).

    For every pattern index in ``patterns`` (default: all) and flip fraction in ``flips``
    (default 0, 0.05, ..., 0.5), ``trials`` cues with exactly that fraction of bits flipped
    are run; ``success`` is the fraction whose final overlap is >= ``threshold``. The
    ``basin`` is the largest flip fraction up to which success stays >= ``level``
    (-1 when the pattern is not retrieved even from itself).
    """
    stored = memory.patterns
    n = stored.shape[1]
    index = np.arange(stored.shape[0]) if patterns is None else np.asarray(patterns, dtype=int)
    if index.ndim != 1 or index.size == 0 or index.min() < 0 or index.max() >= stored.shape[0]:
        raise ConfigError(f"patterns must be indices in [0, {stored.shape[0] - 1}]; got {patterns!r}")
    fractions = np.linspace(0.0, 0.5, 11) if flips is None else np.asarray(flips, dtype=float)
    if fractions.ndim != 1 or fractions.size == 0 or fractions.min() < 0 or fractions.max() > 1:
        raise ConfigError(f"flips must be fractions in [0, 1]; got {flips!r}")
    fractions = np.sort(fractions)
    rng = np.random.default_rng(seed)
    cues = np.empty((index.size, fractions.size, trials, n))
    for a, mu in enumerate(index):
        for b, f in enumerate(fractions):
            count = int(round(f * n))
            for c in range(trials):
                cue = stored[mu].copy()
                cue[rng.choice(n, size=count, replace=False)] *= -1
                cues[a, b, c] = cue
    out = memory.retrieve(cues.reshape(-1, n), update=update, max_sweeps=max_sweeps, seed=seed, backend=backend)
    final = out.states.reshape(cues.shape)
    overlap = np.einsum("pftn,pn->pft", final, stored[index]) / n
    success = (overlap >= threshold).mean(-1)
    good = np.cumprod(success >= level, axis=1).astype(bool)
    basin = np.where(good.any(1), fractions[np.maximum(good.sum(1) - 1, 0)], -1.0)
    return xr.Dataset(
        {
            "success": (("pattern", "flip"), success, {"long_name": f"fraction of cues retrieved (overlap >= {threshold})"}),
            "basin": (("pattern",), basin, {"long_name": f"largest flip fraction with success >= {level}"}),
        },
        coords={"pattern": index, "flip": fractions},
    )

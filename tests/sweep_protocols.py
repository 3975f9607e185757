"""Small deterministic protocols for the sweep, storage, figure and CLI tests and the sweep benchmark.

Referenced as ``"sweep_protocols:NAME"``; dask worker processes import this
module from the folder the sweep resolves it to.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["noisy_mean", "ragged", "gated", "busy", "noisy_mean_on_threads", "ragged_on_threads"]


def noisy_mean(
    *, n: int = 8, mu: float = 0.0, scale: float = 1.0, delay: float = 0.0,
    backend: str = "numpy", seed=0, dtype: str = "float32", device=None,
) -> xr.Dataset:
    """``n`` Gaussian samples of mean ``mu`` and their mean; sleeps ``delay`` seconds first."""
    if delay:
        time.sleep(delay)
    rng = np.random.default_rng(seed)
    samples = (mu + scale * rng.standard_normal(n)).astype(dtype)
    return xr.Dataset(
        {"samples": ("sample", samples, {"units": "1"}), "sample_mean": ((), samples.mean(dtype=np.float64))},
        coords={"sample": np.arange(n)},
    )


def ragged(*, n: int = 3, backend: str = "numpy", seed=0, dtype: str = "float32", device=None) -> xr.Dataset:
    """An output whose length is the parameter ``n``: a swept ``n`` must be refused."""
    rng = np.random.default_rng(seed)
    return xr.Dataset({"x": ("item", rng.standard_normal(n).astype(dtype))})


def gated(
    *, x: int = 0, gate: str = "", backend: str = "numpy", seed=0, dtype: str = "float32", device=None,
) -> xr.Dataset:
    """Raises for odd ``x`` unless the file ``gate`` exists; ``y = x**2`` plus seeded noise otherwise."""
    if x % 2 and not (gate and Path(gate).exists()):
        raise RuntimeError(f"odd x={x} needs the gate file")
    rng = np.random.default_rng(seed)
    return xr.Dataset({"y": ((), np.float64(x * x + rng.random()))})


def busy(
    *, size: int = 100_000, iterations: int = 100, backend: str = "numpy", seed=0, dtype: str = "float64",
    device=None,
) -> xr.Dataset:
    """CPU-bound, single-threaded work: ``iterations`` elementwise passes over ``size`` numbers."""
    rng = np.random.default_rng(seed)
    x = rng.random(size)
    drive = rng.random(size)
    for _ in range(iterations):
        x = np.sin(x) * 0.5 + drive
    return xr.Dataset({"x_mean": ((), float(x.mean()))})


def _on_threads(function):
    """``function`` as a protocol declared to run on threads of the sweeping process: a
    ``module:function`` protocol declares it with the attribute ``runs_on_threads``."""
    declared = functools.wraps(function)(lambda **kwargs: function(**kwargs))
    declared.runs_on_threads = True
    return declared


noisy_mean_on_threads = _on_threads(noisy_mean)
ragged_on_threads = _on_threads(ragged)

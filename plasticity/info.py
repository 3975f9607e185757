"""``plasticity info``: what this installation runs with.

Versions of the package and its dependencies, the backends that import here,
numba's threading layer and thread count, its cache directory, and the GPUs
torch sees.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

__all__ = ["environment", "describe_environment"]

_DEPENDENCIES = (
    "numpy", "numba", "llvmlite", "torch", "scipy", "xarray", "zarr", "dask", "distributed",
    "matplotlib", "tqdm", "scikit-learn", "tomli-w", "h5netcdf", "h5py",
)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _threading_layer() -> str:
    import numba
    import numpy as np

    @numba.njit(parallel=True, cache=False)
    def probe(x):  # the layer is chosen on the first parallel call
        total = 0.0
        for i in numba.prange(x.size):
            total += x[i]
        return total

    try:
        probe(np.ones(4))
        return numba.threading_layer()
    except (ValueError, ImportError) as error:
        return f"unavailable ({error})"


def _gpus() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    gpus = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        gpus.append("mps")
    return gpus


def environment() -> dict[str, object]:
    """The facts ``plasticity info`` prints, as a dictionary."""
    import numba

    from plasticity import __version__
    from plasticity.backends import available_backends
    from plasticity.provenance import git_revision

    try:
        from plasticity.backends.blas import BLAS
        from plasticity.backends.numba_codegen import cache_dir

        kernel_cache, numba_blas = str(cache_dir()), BLAS
    except ImportError as error:
        kernel_cache = numba_blas = f"unavailable ({error})"
    return {
        "plasticity": f"{__version__} ({git_revision() or 'no git revision'})",
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "versions": {name: _version(name) for name in _DEPENDENCIES},
        "backends available": available_backends(),
        "numba threading layer": _threading_layer(),
        "numba threads": numba.config.NUMBA_NUM_THREADS,
        "numba backend BLAS": numba_blas + " (PLASTICITY_BLAS=scipy chooses scipy's)",
        "kernel cache directory": kernel_cache + " (set PLASTICITY_CACHE_DIR to move it)",
        "numba cache directory": numba.config.CACHE_DIR or "beside each module's source (NUMBA_CACHE_DIR unset)",
        "GPUs": _gpus() or ["none"],
    }


def describe_environment() -> str:
    """``plasticity info`` as text."""
    lines = []
    for key, value in environment().items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines.extend(f"  {name}: {version}" for name, version in value.items())
        elif isinstance(value, list):
            lines.append(f"{key}: {', '.join(map(str, value)) or '(none)'}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)

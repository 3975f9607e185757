"""``plasticity info``: what this installation runs with.

Versions of the package and its dependencies, the backends that import here,
numba's threading layer and thread count, how OpenMP threads wait, the BLAS of the numba backend, the
cache directories, and the GPUs torch sees.

The facts come one by one, cheapest first (:func:`facts`), so the command
prints the versions at once and each probe as it finishes: the probes import
the backends (numba, torch and the BLAS binding), which takes seconds.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Iterator

__all__ = ["facts", "environment", "describe_environment", "format_fact"]

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

    try:
        # The layer is chosen when numba launches its threads (importing the numba backend does,
        # after torch's OpenMP runtime is loaded); launching them here compiles nothing.
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
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


def facts() -> Iterator[tuple[str, object]]:
    """The facts ``plasticity info`` prints, as ``(name, value)`` pairs, cheapest first."""
    from plasticity import __version__
    from plasticity.provenance import git_revision

    yield "plasticity", f"{__version__} ({git_revision() or 'no git revision'})"
    yield "python", f"{platform.python_version()} ({sys.executable})"
    yield "platform", platform.platform()
    yield "cores", os.cpu_count()
    yield "versions", {name: _version(name) for name in _DEPENDENCIES}
    numba_cache = os.environ.get("NUMBA_CACHE_DIR")
    yield "numba cache directory", numba_cache or "beside each module's source (NUMBA_CACHE_DIR unset)"

    from plasticity.backends import available_backends

    yield "backends available", available_backends()
    import numba

    yield "numba threading layer", _threading_layer()
    yield "numba threads", numba.config.NUMBA_NUM_THREADS
    from plasticity._threads import openblas_default, thread_defaults

    yield "OpenMP wait", thread_defaults() + "; GOMP_SPINCOUNT=300000 spins as GNU OpenMP does by default"
    yield "OpenBLAS wait", openblas_default() + "; OPENBLAS_THREAD_TIMEOUT=28 spins as OpenBLAS does by default"
    try:
        from plasticity.backends.blas import BLAS
        from plasticity.backends.numba_codegen import cache_dir

        kernel_cache, blas = str(cache_dir()), BLAS
    except ImportError as error:
        kernel_cache = blas = f"unavailable ({error})"
    yield "numba backend BLAS", blas + " (PLASTICITY_BLAS=scipy chooses scipy's)"
    yield "kernel cache directory", kernel_cache + " (set PLASTICITY_CACHE_DIR to move it)"
    yield "GPUs", _gpus() or ["none"]


def environment() -> dict[str, object]:
    """The facts ``plasticity info`` prints, as a dictionary."""
    return dict(facts())


def format_fact(name: str, value: object) -> str:
    """One fact as the text ``plasticity info`` prints."""
    if isinstance(value, dict):
        return "\n".join([f"{name}:", *(f"  {key}: {item}" for key, item in value.items())])
    if isinstance(value, list):
        return f"{name}: {', '.join(map(str, value)) or '(none)'}"
    return f"{name}: {value}"


def describe_environment() -> str:
    """``plasticity info`` as text."""
    return "\n".join(format_fact(name, value) for name, value in facts())

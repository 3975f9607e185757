"""Provenance attributes attached to every saved run.

Attributes are kept to strings and numbers so they survive Zarr and netCDF;
anything structured is stored as a JSON string.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["now_iso", "package_version", "git_revision", "base_attrs", "to_json"]


def now_iso() -> str:
    """The current UTC time as an ISO 8601 string."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_version() -> str:
    from plasticity import __version__

    return __version__


def git_revision() -> str:
    """The git revision of the source tree plasticity was imported from, or '' if unknown."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.random.SeedSequence):
        return {"entropy": value.entropy, "spawn_key": list(value.spawn_key)}
    if isinstance(value, Path):
        return str(value)
    as_table = getattr(value, "as_table", None)  # a Rule given as a parameter: its equations table
    if callable(as_table):
        return _jsonable(as_table())
    return value


def to_json(value: Any) -> str:
    """JSON text of a configuration value (numpy scalars, arrays and seed sequences included)."""
    return json.dumps(_jsonable(value), sort_keys=True)


def base_attrs(*, backend: str, dtype: str, seed: Any) -> dict[str, str | int | float]:
    """Provenance every run carries: versions, backend, dtype, seed and host; on the numba backend
    also the BLAS its products ran on (libraries round differently in the last bits); and how
    OpenMP and OpenBLAS threads waited (the package's default or the user's setting), which sets
    the speed on a busy machine."""
    import numba

    from plasticity._threads import openblas_default, thread_defaults

    attrs = {
        "plasticity_version": package_version(),
        "backend": backend,
        "dtype": str(dtype),
        "seed": to_json(seed),
        "host": socket.gethostname(),
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "openmp_wait": thread_defaults(),
        "openblas_wait": openblas_default(),
    }
    if backend == "numba":
        from plasticity.backends.blas import BLAS

        attrs["blas"] = BLAS
    return attrs

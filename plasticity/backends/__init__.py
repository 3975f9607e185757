"""Backend registry: ``numpy`` (the reference, always present), ``numba`` (default), ``torch``.

Every backend runs the same model built from the same expression trees; the
test suite checks that they agree with ``numpy``.
"""

from __future__ import annotations

import importlib
from typing import Any

from plasticity.errors import BackendError

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "available_backends", "check_backend", "get_backend"]

#: Backend name -> module that provides ``build(model, dtype, device)``.
BACKENDS = {
    "numpy": "plasticity.backends.numpy_backend",
    "numba": "plasticity.backends.numba_backend",
    "torch": "plasticity.backends.torch_backend",
}
DEFAULT_BACKEND = "numba"


def available_backends() -> list[str]:
    """Names of the backends whose module imports on this machine."""
    names = []
    for name, module in BACKENDS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names.append(name)
    return names


def check_backend(backend: str, device: str | None = None) -> None:
    """Raise BackendError unless ``backend`` (and ``device``) can run here."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if device is not None and backend != "torch" and str(device) != "cpu":
        raise BackendError(
            f"backend {backend!r} runs on the CPU only; device={device!r} needs backend='torch'"
        )
    get_backend(backend)
    if backend == "torch":
        get_backend("torch").resolve_device(device)


def get_backend(backend: str) -> Any:
    """The module implementing ``backend``."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[backend])
    except ImportError as error:
        raise BackendError(f"backend {backend!r} is not available here: {error}") from error

"""A backend resolved once per run, and the registry of named fast paths.

:func:`resolve` turns the ``backend``, ``device`` and ``dtype`` a user gives into a
:class:`Runtime` (its name, torch device, dtype and array namespace), checked once, with
the project's one default device rule (the torch backend's: the first CUDA device when
there is one, else the CPU). Models take a ``Runtime`` and never branch on a backend's
name themselves.

A *fast path* is a step that does not fit the engine's synchronous local update
(asynchronous random-order recall with incremental fields, a non-local rule such as the
pseudo-inverse): a hand-written function per backend, registered here under a name, with
its *twin*, the engine or reference version the tests compare it with. ``plasticity info``
and the docs list them from :func:`fast_paths`. No model branches on a rule's or backend's
name outside this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

import numpy as np

from plasticity.errors import BackendError, ConfigError

__all__ = ["Runtime", "resolve", "FastPath", "fast_path", "fast_path_replacing", "register_fast_path", "fast_paths"]

_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: ``backend`` name, torch ``device`` (None off torch), ``dtype``,
    and ``xp``, the array namespace (numpy, or torch on the torch backend)."""

    backend: str
    device: Any
    dtype: str
    xp: ModuleType = field(repr=False, compare=False)

    @property
    def is_torch(self) -> bool:
        return self.xp is not np

    def fast_path(self, name: str) -> Callable[..., Any]:
        """This backend's implementation of fast path ``name``."""
        return fast_path(name, self.backend)

    def array(self, values: Any, dtype: str | None = None) -> Any:
        """A copy of ``values`` as an array of this runtime (numpy, or a torch tensor on its device),
        which a fast path may change in place without touching the caller's data."""
        kind = dtype or self.dtype
        if self.is_torch:
            import torch

            return torch.tensor(np.asarray(values), dtype=getattr(torch, kind), device=self.device)
        return np.array(values, dtype=kind)

    def host(self, values: Any) -> np.ndarray:
        """``values`` as a numpy array (copied from the device on torch)."""
        return values.detach().cpu().numpy() if self.is_torch else np.asarray(values)


def resolve(backend: str = "numba", device: str | None = None, dtype: str = "float32") -> Runtime:
    """The :class:`Runtime` for ``backend``/``device``/``dtype``; a BackendError or ConfigError
    (listing the valid values) when one of them cannot run here."""
    from plasticity.backends import check_backend, get_backend

    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(map(repr, _DTYPES))}; got {dtype!r}")
    check_backend(backend, device)
    if backend == "torch":
        import torch

        return Runtime(backend, get_backend("torch").resolve_device(device), dtype, torch)
    return Runtime(backend, None, dtype, np)


@dataclass
class FastPath:
    """A named hand-written step: its implementations by backend, what it computes and its twin
    (the engine or reference version it is tested equal to)."""

    name: str
    description: str
    twin: str
    replaces: Any = None
    implementations: dict[str, Callable[..., Any]] = field(default_factory=dict)


_FAST_PATHS: dict[str, FastPath] = {}


def register_fast_path(
    name: str, backends: str | tuple[str, ...], *, description: str, twin: str, replaces: Any = None
):
    """Decorator: register the function as fast path ``name`` on ``backends`` (a name or a tuple).

    ``replaces`` is the :class:`~plasticity.rule.Rule` whose effect the fast path computes exactly
    (a storage fast path stands for a storage rule): :func:`fast_path_replacing` finds it for
    any rule with the same update, whatever its name. Every registration of one name must give
    the same ``description``, ``twin`` and ``replaces``.
    """
    names = (backends,) if isinstance(backends, str) else tuple(backends)

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        entry = _FAST_PATHS.setdefault(name, FastPath(name, description, twin, replaces))
        if (entry.description, entry.twin, entry.replaces) != (description, twin, replaces):
            raise ValueError(f"fast path {name!r} is registered with two descriptions or twins")
        for backend in names:
            if backend in entry.implementations:
                raise ValueError(f"fast path {name!r} is registered twice for backend {backend!r}")
            entry.implementations[backend] = function
        return function

    return register


def fast_path(name: str, backend: str) -> Callable[..., Any]:
    """The implementation of fast path ``name`` on ``backend``."""
    entry = _FAST_PATHS.get(name)
    if entry is None:
        raise BackendError(f"unknown fast path {name!r}; registered: {', '.join(sorted(_FAST_PATHS)) or '(none)'}")
    try:
        return entry.implementations[backend]
    except KeyError:
        raise BackendError(
            f"fast path {name!r} has no {backend!r} implementation; it runs on {', '.join(entry.implementations)}"
        ) from None


def fast_path_replacing(kind: str, rule: Any, backend: str) -> Callable[..., Any] | None:
    """The ``backend`` implementation of the fast path named ``kind.*`` that replaces a rule with
    the same update as ``rule`` (:meth:`~plasticity.rule.Rule.update_key`), or None."""
    for entry in _FAST_PATHS.values():
        if (entry.name.startswith(kind + ".") and entry.replaces is not None
                and entry.replaces.update_key() == rule.update_key() and backend in entry.implementations):
            return entry.implementations[backend]
    return None


def fast_paths() -> dict[str, FastPath]:
    """Every registered fast path by name (after the models that register them are imported)."""
    import plasticity.networks  # noqa: F401  (models register their fast paths on import)

    return dict(sorted(_FAST_PATHS.items()))

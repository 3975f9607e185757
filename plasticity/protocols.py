"""The protocol registry: named functions that run a model and return an xarray.Dataset.

A protocol is a plain function with keyword-only parameters. Its defaults are
its parameter defaults; the runtime settings ``backend``, ``seed``, ``dtype``
and ``device`` are passed by the caller and are not parameters of the
experiment. Protocols register themselves with :func:`protocol` when their
module in :mod:`plasticity.networks` is imported; a user's own protocol is
named ``"package.module:function"``.

Example::

    @protocol("pca")
    def pca(*, n: int = 16, k: int = 1, rule: str = "oja", backend="numba",
            seed=0, dtype="float32", device=None) -> xr.Dataset: ...
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.params import Spec, check_params, check_seed, specs_of
from plasticity.provenance import base_attrs, now_iso, to_json

__all__ = ["Protocol", "protocol", "get_protocol", "list_protocols", "run_protocol", "RUNTIME_KEYS"]

#: Keyword arguments every protocol accepts that are settings of the run, not parameters.
RUNTIME_KEYS = ("backend", "seed", "dtype", "device")

_REGISTRY: dict[str, "Protocol"] = {}


@dataclass(frozen=True)
class Protocol:
    """A registered protocol: its name, function, parameter defaults and the checks its signature
    declares (:mod:`plasticity.params`)."""

    name: str
    function: Callable[..., xr.Dataset]
    defaults: dict[str, Any]
    specs: dict[str, Spec] = field(default_factory=dict)
    #: Points may run at once on threads of one process and gain from it (see :func:`protocol`).
    threads: bool = False

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.function) or ""

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults updated with ``params``; an unknown key is a ConfigError listing the valid ones."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"protocol {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"valid parameters: {', '.join(sorted(self.defaults)) or '(none)'}"
            )
        merged = dict(self.defaults)
        merged.update(params)
        check_params(self.specs, params)
        return merged


def _defaults_of(function: Callable[..., Any]) -> dict[str, Any]:
    defaults = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name in RUNTIME_KEYS:
            continue
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"protocol parameter {name!r} of {function.__qualname__} must be keyword-only")
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(f"protocol parameter {name!r} of {function.__qualname__} needs a default")
        defaults[name] = parameter.default
    missing = [key for key in RUNTIME_KEYS if key not in inspect.signature(function).parameters]
    if missing:
        raise TypeError(f"protocol {function.__qualname__} must accept {', '.join(missing)}")
    return defaults


def _checked(function: Callable[..., xr.Dataset], specs: dict[str, Spec]) -> Callable[..., xr.Dataset]:
    """``function`` with its parameters and seed checked on every call, from Python or a file."""

    @functools.wraps(function)
    def checked(**kwargs: Any) -> xr.Dataset:
        if "seed" in kwargs:
            kwargs["seed"] = check_seed(kwargs["seed"])
        return function(**check_params(specs, kwargs))

    return checked


def _protocol_of(name: str, function: Callable[..., xr.Dataset], threads: bool | None = None) -> Protocol:
    """``function`` as the protocol ``name``; ``threads`` defaults to the function's attribute
    ``runs_on_threads`` (how a ``module:function`` protocol declares what :func:`protocol` does)."""
    threads = getattr(function, "runs_on_threads", False) if threads is None else threads
    defaults = _defaults_of(function)
    specs = specs_of(function, list(defaults))
    for key, value in defaults.items():
        if key in specs and value is not None:
            specs[key](key, value)  # a default its own declaration refuses is a bug in the protocol
    checked = _checked(function, specs)
    checked.runs_on_threads = threads  # type: ignore[attr-defined]
    return Protocol(name, checked, defaults, specs, threads)


def protocol(name: str, *, threads: bool = False) -> Callable[[Callable[..., xr.Dataset]], Callable[..., xr.Dataset]]:
    """Register ``function`` as the protocol ``name`` (decorator). The function returned checks
    its parameters against the specs its signature declares (:mod:`plasticity.params`).

    ``threads=True`` declares that points of the protocol may run at once on threads of one
    process and gain from it: its work is in compiled code that releases the GIL (numba
    ``nogil=True``, numpy's large-array loops, torch) and it keeps no state between calls. A
    local ``plasticity sweep`` then runs its points on threads of the sweeping process, with the
    kernels already loaded and no worker process to start (:mod:`plasticity.sweep`). A protocol
    of one's own, named ``"package.module:function"``, declares the same with
    ``function.runs_on_threads = True``."""

    def register(function: Callable[..., xr.Dataset]) -> Callable[..., xr.Dataset]:
        if name in _REGISTRY and _REGISTRY[name].function.__wrapped__ is not function:
            raise ValueError(f"protocol {name!r} is registered twice")
        _REGISTRY[name] = _protocol_of(name, function, threads)
        return _REGISTRY[name].function

    return register


def _load_builtin() -> None:
    importlib.import_module("plasticity.networks")


def list_protocols() -> dict[str, Protocol]:
    """Every built-in protocol by name."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def _check_form(name: str, module_name: str, attribute: str) -> None:
    """Refuse ``name`` before its module runs when it is not ``package.module:function`` or the
    module's source (read with ``ast``, not run) binds no name ``function``."""
    if not attribute.isidentifier() or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(f"protocol {name!r} is not of the form 'package.module:function'")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as error:
        raise ConfigError(f"protocol {name!r}: cannot find module {module_name!r} ({error})") from error
    if spec is None:
        raise ConfigError(f"protocol {name!r}: no module {module_name!r} on the Python path")
    if spec.origin is None or not spec.origin.endswith(".py"):
        return  # a compiled or namespace module: only importing it tells
    try:
        tree = ast.parse(Path(spec.origin).read_bytes(), spec.origin)
    except SyntaxError as error:
        raise ConfigError(f"protocol {name!r}: module {module_name!r} does not parse ({error})") from error
    defined = set()
    for node in ast.walk(tree):  # every name the module binds anywhere: a loose check, never a false refusal
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    if attribute not in defined:
        raise ConfigError(f"protocol {name!r}: module {module_name!r} ({spec.origin}) defines no {attribute!r}")


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``: a built-in name or ``"package.module:function"``."""
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        _check_form(name, module_name, attribute)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"protocol {name!r}: cannot import module {module_name!r} ({error})") from error
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ConfigError(f"protocol {name!r}: module {module_name!r} has no function {attribute!r}")
        try:
            return _protocol_of(name, function)
        except TypeError as error:
            raise ConfigError(f"protocol {name!r}: {error}") from error
    raise ConfigError(
        f"unknown protocol {name!r}; built-in protocols: {', '.join(sorted(_REGISTRY))}, "
        "or give 'package.module:function'"
    )


def run_protocol(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Run protocol ``name`` with ``params`` and return its dataset with provenance attributes."""
    from plasticity.backends import check_backend

    proto = get_protocol(name)
    merged = proto.validate(dict(params or {}))
    check_backend(backend, device)
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    start, clock = now_iso(), time.perf_counter()
    dataset = proto.function(backend=backend, seed=seed, dtype=dtype, device=device, **merged)
    if not isinstance(dataset, xr.Dataset):
        raise TypeError(f"protocol {name!r} returned {type(dataset).__name__}, not an xarray.Dataset")
    attrs = base_attrs(backend=backend, dtype=dtype, seed=seed)
    attrs.update(
        protocol=name,
        params=to_json(merged),
        start_time=start,
        end_time=now_iso(),
        wall_time_s=time.perf_counter() - clock,
    )
    if device is not None:
        attrs["device"] = str(device)
    dataset.attrs = {**dataset.attrs, **attrs}
    return dataset

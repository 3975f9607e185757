"""Experiments described by TOML files: loading, ``--set`` overrides and validation.

An experiment file has the top-level keys ``protocol``, ``backend``, ``seed``,
``dtype`` and ``device``, a ``[params]`` table of protocol parameters and,
for sweeps, a ``[sweep]`` table::

    protocol = "hopfield.capacity"
    backend = "numba"
    seed = 0
    dtype = "float32"

    [params]
    n = 500

    [sweep]
    rule = ["hebbian", "storkey"]                     # a list of values
    load = {start = 0.02, stop = 0.30, step = 0.02}   # stop included
    eta = {start = 1e-4, stop = 1e-1, num = 7, log = true}
    repeats = 5
    seed_by = ["load", "repeat"]                      # optional: rules share seeds

``seed_by`` names the swept keys (and ``repeat``) that choose a point's seed;
points that differ only in the others share it (common random numbers: the
rules above see the same patterns at each load and repeat). By default every
point has its own seed.

Every key is checked before any work starts; an unknown key is a
:class:`~plasticity.errors.ConfigError` naming it and listing the valid ones.

A protocol named ``"package.module:function"`` is imported (the ``plasticity``
command looks for it in the current directory too, while it resolves it): an
experiment file that names one runs that module's code, like a script. Its
form is checked, and the module's source read for ``function``, before it runs.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from plasticity.errors import ConfigError
from plasticity.protocols import get_protocol

__all__ = ["Experiment", "load_experiment", "parse_experiment", "apply_overrides", "axis_values", "TOP_LEVEL_KEYS"]

#: Keys allowed at the top level of an experiment file.
TOP_LEVEL_KEYS = ("protocol", "backend", "seed", "dtype", "device", "params", "sweep")
_DTYPES = ("float32", "float64")
_RANGE_KEYS = ("start", "stop", "step", "num", "log")
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:+-]*$")


@dataclass(frozen=True)
class Experiment:
    """One validated experiment: a protocol, its parameters, runtime settings and an optional grid.

    ``params`` holds the parameters the file sets (not the protocol defaults);
    ``axes`` maps each swept parameter to its values in grid order,
    ``repeats`` is the number of repeats of every grid point and ``seed_by``
    the dimensions that choose a point's seed (None: all of them).
    """

    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    backend: str = "numba"
    seed: int = 0
    dtype: str = "float32"
    device: str | None = None
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    repeats: int = 1
    has_sweep: bool = False
    seed_by: tuple[str, ...] | None = None

    def resolved_params(self) -> dict[str, Any]:
        """The protocol's defaults updated with this experiment's parameters."""
        return get_protocol(self.protocol).validate(self.params)

    def config(self) -> dict[str, Any]:
        """Everything that determines the results, as plain JSON-able values.

        Used to refuse resuming a sweep store with a changed configuration, so
        it includes the protocol defaults in force.
        """
        config = {
            "protocol": self.protocol,
            "backend": self.backend,
            "seed": self.seed,
            "dtype": self.dtype,
            "device": self.device,
            "params": _plain(self.resolved_params()),
            "sweep": {name: list(_plain(values)) for name, values in self.axes.items()},
            "repeats": self.repeats,
        }
        if self.seed_by is not None:  # absent by default, so stores made before seed_by resume
            config["seed_by"] = list(self.seed_by)
        return config

    def to_toml(self) -> str:
        """The experiment as TOML text (ranges written out as lists)."""
        document: dict[str, Any] = {
            "protocol": self.protocol,
            "backend": self.backend,
            "seed": self.seed,
            "dtype": self.dtype,
        }
        if self.device is not None:
            document["device"] = self.device
        document["params"] = _plain(self.params)
        if self.has_sweep:
            sweep: dict[str, Any] = {name: list(_plain(values)) for name, values in self.axes.items()}
            sweep["repeats"] = self.repeats
            if self.seed_by is not None:
                sweep["seed_by"] = list(self.seed_by)
            document["sweep"] = sweep
        return tomli_w.dumps(document)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Read, override and validate the experiment in the TOML file ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"experiment file {str(path)!r} does not exist") from None
    return parse_experiment(text, overrides, source=str(path))


def parse_experiment(text: str, overrides: list[str] | tuple[str, ...] = (), *, source: str = "<string>") -> Experiment:
    """Parse and validate experiment TOML ``text`` after applying ``overrides`` (``KEY=VALUE``)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source} is not valid TOML: {error}") from error
    apply_overrides(document, overrides)
    return _validate(document, source)


def _parse_value(text: str, assignment: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.match(text):
            return text
        raise ConfigError(
            f"--set {assignment!r}: {text!r} is not a TOML value (quote strings, e.g. KEY='\"text\"')"
        ) from None


def apply_overrides(document: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides in place; ``KEY`` is dotted (``params.eta``), ``VALUE`` is TOML.

    A value that is not valid TOML but is a bare word (``oja``) is taken as a string.
    """
    for assignment in overrides:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. params.eta=0.01), got {assignment!r}")
        parts = key.split(".")
        if parts[0] not in TOP_LEVEL_KEYS:
            raise ConfigError(
                f"--set {assignment!r}: unknown key {parts[0]!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}"
            )
        table = document
        for part in parts[:-1]:
            nested = table.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"--set {assignment!r}: {part!r} is not a table")
            table = nested
        table[parts[-1]] = _parse_value(raw.strip(), assignment)
    return document


def _validate(document: dict[str, Any], source: str) -> Experiment:
    unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(TOP_LEVEL_KEYS)}"
        )
    from plasticity.backends import BACKENDS, DEFAULT_BACKEND

    protocol = document.get("protocol")
    if not isinstance(protocol, str) or not protocol:
        raise ConfigError(f"{source}: 'protocol' must be a protocol name (a string), got {protocol!r}")
    backend = document.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise ConfigError(f"{source}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    seed = document.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a non-negative integer, got {seed!r}")
    dtype = document.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ConfigError(f"{source}: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    device = document.get("device")
    if device is not None and not isinstance(device, str):
        raise ConfigError(f"{source}: device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: [params] must be a table of parameter = value, got {params!r}")
    proto = get_protocol(protocol)
    proto.validate(params)

    has_sweep = "sweep" in document
    sweep = dict(document.get("sweep", {}))
    if not isinstance(document.get("sweep", {}), dict):
        raise ConfigError(f"{source}: [sweep] must be a table of parameter = values")
    repeats = sweep.pop("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{source}: sweep.repeats must be a positive integer, got {repeats!r}")
    seed_by = sweep.pop("seed_by", None)
    unknown = sorted(set(sweep) - set(proto.defaults))
    if unknown:
        raise ConfigError(
            f"{source}: [sweep] names {', '.join(map(repr, unknown))}, which protocol {protocol!r} does not have; "
            f"valid keys: repeats, seed_by, {', '.join(sorted(proto.defaults))}"
        )
    both = sorted(set(sweep) & set(params))
    if both:
        raise ConfigError(
            f"{source}: {', '.join(map(repr, both))} is set in both [params] and [sweep]; keep it in one of them"
        )
    axes = {name: axis_values(name, spec) for name, spec in sweep.items()}
    if seed_by is not None:
        seed_by = _seed_by(seed_by, axes, repeats, source)
    return Experiment(
        protocol=protocol,
        params=params,
        backend=backend,
        seed=seed,
        dtype=dtype,
        device=device,
        axes=axes,
        repeats=repeats,
        has_sweep=has_sweep,
        seed_by=seed_by,
    )


def _seed_by(value: Any, axes: dict[str, tuple[Any, ...]], repeats: int, source: str) -> tuple[str, ...]:
    """``sweep.seed_by`` checked: distinct swept keys or ``repeat``, in grid order."""
    dims = (*axes, "repeat")
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{source}: sweep.seed_by must be a list of swept keys (of {', '.join(dims)}), got {value!r}")
    unknown = [key for key in value if key not in dims]
    if unknown:
        raise ConfigError(
            f"{source}: sweep.seed_by names {', '.join(map(repr, unknown))}, which is not swept; "
            f"valid keys: {', '.join(dims)}"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: sweep.seed_by names a key twice: {value!r}")
    if repeats > 1 and "repeat" not in value:
        raise ConfigError(
            f"{source}: sweep.seed_by must include 'repeat' when repeats = {repeats}: repeats with one seed "
            "would repeat one run"
        )
    return tuple(dim for dim in dims if dim in value)


def _number(name: str, key: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"sweep.{name}.{key} must be a finite number, got {value!r}")
    return value


def _tidy(value: float) -> float:
    # 0.02 * 7 is 0.14000000000000001: round away the float noise so .sel(load=0.14) finds it.
    return float(f"{value:.12g}")


def axis_values(name: str, spec: Any) -> tuple[Any, ...]:
    """The values of one swept parameter from its ``[sweep]`` entry.

    ``spec`` is a non-empty list of scalars of one kind, or a range table:
    ``{start, stop, step}`` (``stop`` included when reached), ``{start, stop, num}``
    (evenly spaced, both ends included) or ``{start, stop, num, log = true}``
    (evenly spaced in log scale, positive ends).
    """
    if isinstance(spec, list):
        return _list_values(name, spec)
    if not isinstance(spec, dict):
        raise ConfigError(
            f"sweep.{name} must be a list of values or a range table {{start, stop, step | num [, log]}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - set(_RANGE_KEYS))
    if unknown:
        raise ConfigError(
            f"sweep.{name}: unknown range key {', '.join(map(repr, unknown))}; valid keys: {', '.join(_RANGE_KEYS)}"
        )
    for key in ("start", "stop"):
        if key not in spec:
            raise ConfigError(f"sweep.{name}: a range needs {key!r} (keys: start, stop, and step or num)")
    start, stop = _number(name, "start", spec["start"]), _number(name, "stop", spec["stop"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"sweep.{name}.log must be true or false, got {log!r}")
    if ("step" in spec) == ("num" in spec):
        raise ConfigError(f"sweep.{name}: a range needs exactly one of 'step' or 'num'")
    if "num" in spec:
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ConfigError(f"sweep.{name}.num must be a positive integer, got {num!r}")
        if log:
            if start <= 0 or stop <= 0:
                raise ConfigError(f"sweep.{name}: a log range needs start > 0 and stop > 0, got {start}, {stop}")
            values = np.geomspace(start, stop, num)
        else:
            values = np.linspace(start, stop, num)
        return tuple(_tidy(v) for v in values)
    if log:
        raise ConfigError(f"sweep.{name}: log = true needs 'num', not 'step'")
    step = _number(name, "step", spec["step"])
    if step == 0:
        raise ConfigError(f"sweep.{name}.step must not be 0")
    count = math.floor((stop - start) / step * (1 + 1e-12) + 1e-9) + 1
    if count < 1:
        raise ConfigError(
            f"sweep.{name}: step {step} never goes from start {start} towards stop {stop}; the range is empty"
        )
    if all(isinstance(v, int) for v in (start, stop, step)):
        return tuple(int(start + i * step) for i in range(count))
    return tuple(_tidy(start + i * step) for i in range(count))


def _list_values(name: str, values: list[Any]) -> tuple[Any, ...]:
    if not values:
        raise ConfigError(f"sweep.{name} is an empty list; give at least one value")
    kinds = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, (int, float)):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        else:
            raise ConfigError(
                f"sweep.{name}: values must be numbers, strings or booleans (one coordinate each), got {value!r}"
            )
    if len(kinds) > 1:
        raise ConfigError(f"sweep.{name}: values must all be of one kind (numbers, strings or booleans), got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"sweep.{name}: values must be distinct, got {values!r}")
    if kinds == {"number"} and any(isinstance(v, float) for v in values):
        return tuple(float(v) for v in values)
    return tuple(values)

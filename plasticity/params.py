"""Parameters of protocols and constructors: declared once, checked the same way everywhere.

A protocol declares what each parameter accepts in its signature, with :data:`typing.Annotated`::

    @protocol("hopfield.capacity")
    def capacity(*, n: Annotated[int, Int(2, 100_000)] = 1000,
                 load: Annotated[float, Real(0, 10, low_open=True)] = 0.1,
                 rule: Annotated[object, RuleSpec()] = "hebbian", ...)

A plain annotation (``int``, ``float``, ``bool``, ``str``) is a type check (a float must also be
finite). :func:`check_params` applies the checks before the protocol runs, and every failure is a
:class:`~plasticity.errors.ConfigError` that reads the same way whichever model raised it:
the parameter, the value given and the valid values. Constructors call :func:`check` with the
same specs.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from plasticity.errors import ConfigError

__all__ = [
    "Spec",
    "Int",
    "Real",
    "Flag",
    "Text",
    "Choice",
    "Sizes",
    "Maybe",
    "RuleSpec",
    "SeedSpec",
    "check",
    "check_seed",
    "specs_of",
    "check_params",
]


def _fail(name: str, valid: str, value: Any) -> ConfigError:
    return ConfigError(f"{name} must be {valid}; got {value!r}")


class Spec:
    """What one parameter accepts. ``__call__(name, value)`` returns the checked value or raises."""

    def describe(self) -> str:
        raise NotImplementedError

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Int(Spec):
    """An integer in ``[low, high]`` (``high=None``: no upper bound)."""

    low: int | None = None
    high: int | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer in [{_bound(self.low)}, {_bound(self.high)}]"
        if self.low is not None:
            return f"an integer >= {_bound(self.low)}"
        if self.high is not None:
            return f"an integer <= {_bound(self.high)}"
        return "an integer"

    def __call__(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise _fail(name, self.describe(), value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise _fail(name, self.describe(), value)
        return int(value)


@dataclass(frozen=True)
class Real(Spec):
    """A finite number in the interval from ``low`` to ``high`` (either may be ``None``), each end
    closed unless ``low_open``/``high_open``. Integers are accepted and returned as floats."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "a finite number"
        if self.high is None:
            return f"a finite number {'>' if self.low_open else '>='} {_bound(self.low)}"
        if self.low is None:
            return f"a finite number {'<' if self.high_open else '<='} {_bound(self.high)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"a number in {left}{_bound(self.low)}, {_bound(self.high)}{right}"

    def __call__(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _fail(name, self.describe(), value)
        number = float(value)
        if not math.isfinite(number):
            raise _fail(name, self.describe(), value)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise _fail(name, self.describe(), value)
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            raise _fail(name, self.describe(), value)
        return number


@dataclass(frozen=True)
class Flag(Spec):
    """``True`` or ``False``."""

    def describe(self) -> str:
        return "true or false"

    def __call__(self, name: str, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise _fail(name, self.describe(), value)
        return bool(value)


@dataclass(frozen=True)
class Text(Spec):
    """Any string."""

    def describe(self) -> str:
        return "a string"

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(name, self.describe(), value)
        return value


@dataclass(frozen=True, init=False)
class Choice(Spec):
    """One of the given strings."""

    values: tuple[str, ...]

    def __init__(self, *values: str):
        object.__setattr__(self, "values", tuple(values))

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.values))

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise _fail(name, self.describe(), value)
        return value


@dataclass(frozen=True)
class Sizes(Spec):
    """A list of at least ``min_length`` (and at most ``max_length``, ``None``: any number of)
    integers, each in ``[low, high]``; returned as a list."""

    low: int = 1
    high: int | None = None
    min_length: int = 1
    max_length: int | None = None

    def describe(self) -> str:
        count = f"at least {self.min_length}" if self.max_length is None else f"{self.min_length} to {self.max_length}"
        return f"a list of {count} {Int(self.low, self.high).describe().replace('an integer', 'integers')}"

    def __call__(self, name: str, value: Any) -> list[int]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) < self.min_length:
            raise _fail(name, self.describe(), value)
        if self.max_length is not None and len(value) > self.max_length:
            raise _fail(name, self.describe(), value)
        item = Int(self.low, self.high)
        try:
            return [item(name, size) for size in value]
        except ConfigError:
            raise _fail(name, self.describe(), value) from None


@dataclass(frozen=True)
class Maybe(Spec):
    """``None`` or what ``spec`` accepts."""

    spec: Spec

    def describe(self) -> str:
        return f"{self.spec.describe()}, or omitted (None)"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.spec(name, value)
        except ConfigError:
            raise _fail(name, self.describe(), value) from None


@dataclass(frozen=True)
class RuleSpec(Spec):
    """A learning or storage rule: a library name, a table of equations (``equations``, and
    optionally ``params``, ``form``, ``modulators``, ``init``, ``name``), or a
    :class:`~plasticity.rule.Rule`. Returned as a ``Rule``; a bad equation raises
    :class:`~plasticity.errors.EquationError` naming it."""

    def describe(self) -> str:
        return "a rule: a library name, a table with 'equations' (and 'params', 'form', ...) or a Rule"

    def __call__(self, name: str, value: Any) -> Any:
        from plasticity.rules import resolve_rule

        return resolve_rule(value, parameter=name)


@dataclass(frozen=True)
class SeedSpec(Spec):
    """A non-negative integer or a :class:`numpy.random.SeedSequence`."""

    def describe(self) -> str:
        return "a non-negative integer or a numpy.random.SeedSequence"

    def __call__(self, name: str, value: Any) -> int | np.random.SeedSequence:
        if isinstance(value, np.random.SeedSequence):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise _fail(name, self.describe(), value)
        return int(value)


def check(name: str, value: Any, spec: Spec) -> Any:
    """``value`` checked (and converted) by ``spec``; a ConfigError naming ``name`` otherwise."""
    return spec(name, value)


def check_seed(seed: Any, name: str = "seed") -> int | np.random.SeedSequence:
    """``seed`` if it is a non-negative integer or a SeedSequence."""
    return SeedSpec()(name, seed)


_PLAIN: dict[Any, Spec] = {int: Int(), float: Real(), bool: Flag(), str: Text()}


def specs_of(function: Callable[..., Any], names: Sequence[str] | None = None) -> dict[str, Spec]:
    """The spec of each parameter of ``function`` that declares one: an ``Annotated[..., Spec]``
    annotation, or a plain ``int``, ``float``, ``bool`` or ``str`` annotation."""
    hints = typing.get_type_hints(function, include_extras=True)
    specs: dict[str, Spec] = {}
    for name, hint in hints.items():
        if name == "return" or (names is not None and name not in names):
            continue
        if typing.get_origin(hint) is typing.Annotated:
            found = [extra for extra in typing.get_args(hint)[1:] if isinstance(extra, Spec)]
            if found:
                specs[name] = found[0]
                continue
            hint = typing.get_args(hint)[0]
        if hint in _PLAIN:
            specs[name] = _PLAIN[hint]
    return specs


def check_params(specs: Mapping[str, Spec], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every value that has a spec checked and converted; the first failure raises."""
    return {name: specs[name](name, value) if name in specs else value for name, value in params.items()}

"""Initial values for population and synapse variables.

An initial value is a number, an array that broadcasts to the variable's
shape, or one of the initialisers below: callables ``(rng, shape) -> array``
drawing from the simulation's seeded generator. Initialisers check their arguments when made
(finite numbers, ``std >= 0``, ``low <= high``) and every initial value must be finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plasticity.errors import ConfigError
from plasticity.params import Real, check

__all__ = ["normal", "uniform", "constant", "Initializer", "resolve_initial"]

Initializer = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class normal:
    """Independent normal values with the given ``std`` and ``mean``."""

    std: float
    mean: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", check("std", self.std, Real(0)))
        object.__setattr__(self, "mean", check("mean", self.mean, Real()))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.normal(self.mean, self.std, size=shape)


@dataclass(frozen=True)
class uniform:
    """Independent uniform values on ``[low, high)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", check("low", self.low, Real()))
        object.__setattr__(self, "high", check("high", self.high, Real(self.low)))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=shape)


@dataclass(frozen=True)
class constant:
    """The same ``value`` everywhere."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check("value", self.value, Real()))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, float(self.value))


def resolve_initial(value: Any, shape: tuple[int, ...], rng: np.random.Generator, what: str) -> np.ndarray:
    """The float64 array of ``shape`` that ``value`` describes; ``what`` names it in errors."""
    if callable(value):
        array = np.asarray(value(rng, shape), dtype=np.float64)
    else:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"initial value of {what} must be a number, an array or an initialiser: {error}") from None
    try:
        initial = np.array(np.broadcast_to(array, shape), dtype=np.float64)
    except ValueError:
        raise ConfigError(
            f"initial value of {what} has shape {array.shape}, which does not broadcast to {shape}"
        ) from None
    if not np.isfinite(initial).all():
        raise ConfigError(f"initial value of {what} must be finite; it holds NaN or infinite values")
    return initial

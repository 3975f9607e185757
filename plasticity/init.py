"""Initial values for population and synapse variables.

An initial value is a number, an array that broadcasts to the variable's
shape, or one of the initialisers below: callables ``(rng, shape) -> array``
drawing from the simulation's seeded generator. Initialisers check their arguments when made
(finite numbers, ``std >= 0``, ``low <= high``) and every initial value must be finite.

Memory: :func:`resolve_initial` writes a variable's values straight into an array of the state's
dtype; the initialisers below fill it in blocks of :data:`BLOCK_ELEMENTS` drawn in float64 (the
same values, in the same order, as one draw of the whole shape), so building a network of float32
weights needs the weights and a block, not a float64 matrix of twice their size and its copy
(issue 18: building peaked at 4x the weights; ``benchmarks/bench_memory.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plasticity._aligned import aligned_empty
from plasticity.errors import ConfigError
from plasticity.params import Real, check

__all__ = ["normal", "uniform", "constant", "Initializer", "resolve_initial", "all_finite", "BLOCK_ELEMENTS"]

Initializer = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]

#: Values an initialiser draws at once (a float64 block of 512 KiB).
BLOCK_ELEMENTS = 1 << 16


def all_finite(array: np.ndarray) -> bool:
    """Whether no element of ``array`` is NaN or infinite, without a temporary of its size: its sum is
    NaN or infinite if an element is, so a finite sum (one read) settles it; a sum that is not
    (a bad element, or an overflow of finite ones) is followed by the element-wise check."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.sum()) or np.isfinite(array).all())


def _fill_in_blocks(out: np.ndarray, draw: Callable[[int], np.ndarray]) -> None:
    """Fill the C-contiguous ``out`` in order with ``draw(count)``, :data:`BLOCK_ELEMENTS` at a time."""
    flat = out.reshape(-1)
    for start in range(0, flat.size, BLOCK_ELEMENTS):
        stop = min(start + BLOCK_ELEMENTS, flat.size)
        flat[start:stop] = draw(stop - start)


@dataclass(frozen=True)
class normal:
    """Independent normal values with the given ``std`` and ``mean``."""

    std: float
    mean: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", check("std", self.std, Real(0)))
        object.__setattr__(self, "mean", check("mean", self.mean, Real()))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape)
        self.fill(rng, out)
        return out

    def fill(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Draw into the C-contiguous ``out`` (any float dtype) the values ``rng.normal`` draws for its shape."""
        _fill_in_blocks(out, lambda count: rng.normal(self.mean, self.std, size=count))


@dataclass(frozen=True)
class uniform:
    """Independent uniform values on ``[low, high)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", check("low", self.low, Real()))
        object.__setattr__(self, "high", check("high", self.high, Real(self.low)))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape)
        self.fill(rng, out)
        return out

    def fill(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Draw into the C-contiguous ``out`` (any float dtype) the values ``rng.uniform`` draws for its shape."""
        _fill_in_blocks(out, lambda count: rng.uniform(self.low, self.high, size=count))


@dataclass(frozen=True)
class constant:
    """The same ``value`` everywhere."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check("value", self.value, Real()))

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, float(self.value))

    def fill(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Write the value into ``out``."""
        out.fill(self.value)


def resolve_initial(
    value: Any, shape: tuple[int, ...], rng: np.random.Generator, what: str, dtype: str | np.dtype = "float64"
) -> np.ndarray:
    """The array of ``shape`` and ``dtype`` that ``value`` describes; ``what`` names it in errors.

    The initialisers of this module fill it in blocks; a number, an array or another callable's
    result (taken as float64, as before) is broadcast into it, so no second array of its size is made."""
    initial = aligned_empty(shape, dtype)
    if isinstance(value, (normal, uniform, constant)):
        value.fill(rng, initial)
    else:
        try:
            array = np.asarray(value(rng, shape) if callable(value) else value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            if callable(value):
                raise
            raise ConfigError(f"initial value of {what} must be a number, an array or an initialiser: {error}") from None
        try:
            np.copyto(initial, np.broadcast_to(array, shape))
        except ValueError:
            raise ConfigError(
                f"initial value of {what} has shape {array.shape}, which does not broadcast to {shape}"
            ) from None
    if not all_finite(initial):
        raise ConfigError(f"initial value of {what} must be finite; it holds NaN or infinite values")
    return initial

"""Shared pattern checks and random draws for the associative memories (Hopfield family, dense, modern, UHN).

Every random draw of the associative-memory protocols comes from per-trial
generators spawned from one ``numpy.random.SeedSequence``, so trial ``t`` gets the
same patterns, cue and update order whatever the backend, the number of trials
or the chunking of the work.
"""

from __future__ import annotations

from typing import Any, Sequence

import numba as nb
import numpy as np

from plasticity.errors import ConfigError

__all__ = [
    "BinaryMemory",
    "check_binary",
    "seed_sequence",
    "trial_generators",
    "count_patterns",
    "flip_bits",
    "common_patterns",
    "order_seeds",
    "sweep_orders",
    "order_into",
]


class BinaryMemory:
    """Stored +-1 patterns and what every binary memory derives from them."""

    _patterns: np.ndarray

    @property
    def patterns(self) -> np.ndarray:
        """The stored +-1 patterns, (patterns, N) float64 (a copy)."""
        return self._patterns.copy()

    @property
    def n(self) -> int:
        """Number of units."""
        return self._patterns.shape[1]

    def _states(self, states) -> np.ndarray:
        s = check_binary(states, "states")
        if s.shape[1] != self.n:
            raise ConfigError(f"states must have {self.n} units (the memory size); got {s.shape[1]}")
        return s

    def overlaps(self, states) -> np.ndarray:
        """Overlaps m_mu = xi_mu . s / N of each state with each stored pattern, (batch, patterns)."""
        return self._states(states) @ self._patterns.T / self.n


def check_binary(patterns: Any, name: str = "patterns") -> np.ndarray:
    """``patterns`` as a C-contiguous (patterns, units) float array of +-1 values.

    A single pattern (1-D) is accepted and returned with a leading axis of one.
    """
    array = np.asarray(patterns)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 2:
        raise ConfigError(
            f"{name} must be a (patterns, units) array with at least one pattern of at least 2 units; "
            f"got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ConfigError(f"{name} must be numeric +-1 values; got dtype {array.dtype}")
    if not np.all(np.abs(array) == 1):
        bad = array[np.abs(array) != 1].ravel()[:3]
        raise ConfigError(
            f"{name} of a binary network must contain only -1 and +1 (valid values: -1, 1); "
            f"found {', '.join(map(str, bad))}"
        )
    return np.ascontiguousarray(array, dtype=np.float64)


def seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """A fresh SeedSequence for ``seed`` (a copy when a SeedSequence is given, so spawning is repeatable)."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or a numpy.random.SeedSequence; got {seed!r}")
    return np.random.SeedSequence(int(seed))


def trial_generators(seed: int | np.random.SeedSequence, trials: int) -> list[np.random.Generator]:
    """One independent generator per trial, spawned from ``seed``."""
    return [np.random.default_rng(child) for child in seed_sequence(seed).spawn(trials)]


def count_patterns(n: int, load: float, patterns: int) -> int:
    """Number of stored patterns: ``patterns`` when > 0, else ``round(load * n)``; at least one."""
    if isinstance(patterns, bool) or not isinstance(patterns, (int, np.integer)) or patterns < 0:
        raise ConfigError(f"patterns must be an integer >= 0 (0 means: use load); got {patterns!r}")
    if patterns > 0:
        return int(patterns)
    try:
        load = float(load)
    except (TypeError, ValueError):
        raise ConfigError(f"load must be a number > 0 (patterns per unit); got {load!r}") from None
    count = int(round(load * n))
    if count < 1:
        raise ConfigError(
            f"load={load!r} with n={n} gives zero patterns; use load >= {0.5 / n:.3g} "
            "or set patterns to a positive integer"
        )
    return count


def flip_bits(pattern: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of the +-1 ``pattern`` with exactly ``round(fraction * n)`` randomly chosen units flipped."""
    cue = np.array(pattern, dtype=np.float64, copy=True)
    count = int(round(fraction * cue.shape[-1]))
    if count:
        cue[rng.choice(cue.shape[-1], size=count, replace=False)] *= -1
    return cue


# Random unit orders for asynchronous sweeps. The order of sweep w of a trial is a
# Fisher-Yates shuffle of 0..N-1 driven by 64-bit hashes (splitmix64) of (trial seed,
# w, position): counter-based, so a compiled kernel draws it inside its own loop in
# O(N) and every backend gets the same order.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


@nb.njit(cache=True)
def _mix64(x):  # pragma: no cover - compiled
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@nb.njit(cache=True)
def order_into(seed, sweep, order):  # pragma: no cover - compiled
    """Fill ``order`` (int64, length N) with the unit order of sweep ``sweep`` of the trial with ``seed``."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    base = seed ^ _mix64(np.uint64(sweep + 1) * _GOLDEN)
    for i in range(n - 1, 0, -1):
        j = np.int64(_mix64(base + np.uint64(i) * _GOLDEN) % np.uint64(i + 1))
        held = order[i]
        order[i] = order[j]
        order[j] = held


def _mix64_array(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def sweep_orders(seeds: np.ndarray, sweep: int, n: int) -> np.ndarray:
    """Unit orders (trials, n) of sweep ``sweep`` for trials with ``seeds``; the same as ``order_into``."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    base = seeds ^ _mix64_array(np.full(seeds.shape, sweep + 1, dtype=np.uint64) * _GOLDEN)
    positions = np.arange(n, dtype=np.uint64)
    draws = _mix64_array(base[:, None] + positions[None, :] * _GOLDEN) % (positions + np.uint64(1))[None, :]
    draws = draws.astype(np.int64)
    order = np.tile(np.arange(n, dtype=np.int64), (seeds.size, 1))
    rows = np.arange(seeds.size)
    for i in range(n - 1, 0, -1):
        j = draws[:, i]
        held = order[:, i].copy()
        order[:, i] = order[rows, j]
        order[rows, j] = held
    return order


#: Spawn-key suffix of a trial's common-pattern stream (ASCII "patterns").
_COMMON_KEY = 0x7061747465726E73


def common_patterns(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    """(count, n) unbiased random +-1 patterns (float32) that depend on the trial alone, not on
    ``count`` or ``n``: unit i of pattern mu is the top bit of splitmix64(key + (mu 2^32 + i) golden),
    key drawn from the SeedSequence of the trial's generator ``rng`` (which is not advanced). So
    protocols given the same seed store the same patterns whatever their sizes: a memory of n units
    stores the first n units of the patterns a larger one stores, and a run with fewer patterns the
    first rows (the continuum comparisons of Chandra et al. 2025 store the first P columns of one
    pattern book)."""
    if count < 0 or count >= 2**31 or n < 0 or n >= 2**32:
        raise ConfigError(f"common patterns: count must be in [0, 2^31) and n in [0, 2^32); got {count} and {n}")
    seq = rng.bit_generator.seed_seq
    if not isinstance(seq, np.random.SeedSequence):
        raise ConfigError("common patterns need a generator made from a SeedSequence (numpy.random.default_rng(seed))")
    key = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _COMMON_KEY)).generate_state(1, np.uint64)[0]
    out = np.empty((count, n), dtype=np.float32)
    _hashed_signs(np.uint64(key), out)
    return out


@nb.njit(cache=True)
def _hashed_signs(key, out):  # pragma: no cover - compiled
    """out[mu, i] = +1 or -1 by the top bit of splitmix64(key + (mu 2^32 + i) golden)."""
    for mu in range(out.shape[0]):
        row = np.uint64(mu) << np.uint64(32)
        for i in range(out.shape[1]):
            bit = _mix64(key + (row | np.uint64(i)) * _GOLDEN) >> np.uint64(63)
            out[mu, i] = np.float32(2.0) * np.float32(bit) - np.float32(1.0)


def order_seeds(rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """One uint64 seed per trial for its asynchronous sweep orders, drawn from the trial's generator."""
    return np.array([rng.integers(0, 2**64, dtype=np.uint64) for rng in rngs], dtype=np.uint64)

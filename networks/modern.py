"""Modern continuous Hopfield networks (Ramsauer et al. 2020) and the ``modern.retrieval`` protocol.

Ramsauer, Schaefl, Lehner, et al. (2020), "Hopfield networks is all you need"
(arXiv:2008.02217, ICLR 2021). Stored patterns x_1..x_P (rows of X) and a state
xi evolve by the update xi <- X^T softmax(beta X xi), which descends the energy

    E(xi) = -lse(beta, X xi) + 1/2 xi . xi + log(P) / beta + 1/2 M^2,
    lse(beta, z) = log(sum_mu exp(beta z_mu)) / beta,  M = max_mu |x_mu|.

Well-separated patterns are retrieved in one update (their Theorem 4); a
state whose softmax weights are spread over several patterns sits near a
metastable state (a mixture), the global fixed point at small beta is the mean.

The update is one retrieval of a universal Hopfield network (Millidge et al. 2022;
:mod:`plasticity.networks.uhn`) with dot-product similarity, softmax separation and the
patterns as projection, so this module is that preset (iterated ``steps`` times), not a
second implementation.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import xarray as xr

from plasticity.backends.runtime import resolve
from plasticity.errors import ConfigError
from plasticity.networks._assoc import common_patterns as shared_patterns
from plasticity.networks._assoc import flip_bits, trial_generators
from plasticity.networks.uhn import UniversalHopfield, retrieve
from plasticity.params import Choice, Flag, Int, Real, check
from plasticity.protocols import protocol

__all__ = ["CUES", "ModernHopfield", "retrieval"]

CUES = ("flip", "mask", "noise")


def _preset(patterns: np.ndarray, beta: float, dtype: str) -> UniversalHopfield:
    """The universal Hopfield network that is this modern one: dot-product similarity (per unit,
    hence the inverse temperature beta * D), softmax separation, projection = memory."""
    return UniversalHopfield(patterns, similarity="dot", separation="softmax", beta=beta * patterns.shape[1], dtype=dtype)


class ModernHopfield:
    """A modern continuous Hopfield network (Ramsauer et al. 2020) storing the rows of ``patterns``:
    the universal Hopfield network (:class:`~plasticity.networks.uhn.UniversalHopfield`) with
    dot-product similarity, softmax separation and the patterns as projection, iterated.

    Example::

        net = ModernHopfield(patterns, beta=4.0)
        out = net.retrieve(cues, steps=1)
        net.energy(out), net.weights(out).max(1)  # energy and the largest softmax weight
    """

    def __init__(self, patterns, *, beta: float = 1.0, dtype: str = "float32"):
        self.beta = check("beta", beta, Real(0, None, low_open=True))
        self.uhn = _preset(np.asarray(patterns, dtype=np.float64), self.beta, dtype)
        self.dtype = self.uhn.dtype
        self._patterns = self.uhn.patterns

    @property
    def patterns(self) -> np.ndarray:
        """The stored patterns, (patterns, units) float64 (a copy)."""
        return self._patterns.copy()

    def _states(self, states) -> np.ndarray:
        s = np.asarray(states, dtype=np.float64)
        if s.ndim == 1:
            s = s[None]
        if s.ndim != 2 or s.shape[1] != self._patterns.shape[1]:
            raise ConfigError(f"states must be (batch, {self._patterns.shape[1]}); got shape {s.shape}")
        return s

    def weights(self, states) -> np.ndarray:
        """softmax(beta X xi) for each state: how much each stored pattern contributes, (batch, patterns)."""
        return self.uhn.weights(self._states(states))

    def energy(self, states) -> np.ndarray:
        """E(xi) = -lse(beta, X xi) + xi.xi/2 + log(P)/beta + M^2/2 for each state, (batch,)."""
        s = self._states(states)
        z = self.beta * s @ self._patterns.T
        top = z.max(1)
        lse = (top + np.log(np.exp(z - top[:, None]).sum(1))) / self.beta
        m = np.sqrt((self._patterns**2).sum(1)).max()
        return -lse + 0.5 * (s**2).sum(1) + math.log(self._patterns.shape[0]) / self.beta + 0.5 * m**2

    def separation(self) -> np.ndarray:
        """Delta_mu = x_mu . x_mu - max_{nu != mu} x_mu . x_nu: the margin that decides one-step retrieval."""
        g = self._patterns @ self._patterns.T
        diag = np.diag(g).copy()
        np.fill_diagonal(g, -np.inf)
        return diag - g.max(1) if g.shape[0] > 1 else diag

    def metastable(self, states, *, level: float = 0.5) -> np.ndarray:
        """True where no stored pattern carries at least ``level`` of the softmax weight (a mixture state)."""
        return self.weights(states).max(1) < level

    def retrieve(self, cues, *, steps: int = 1, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """``steps`` updates xi <- X^T softmax(beta X xi) from each cue (row); returns the states."""
        steps = check("steps", steps, Int(1, 1_000_000))
        runtime = resolve(backend, device, self.dtype)
        x = runtime.array(self._patterns[None])
        out = retrieve(runtime, x, x, runtime.array(self._states(cues)), "dot", "softmax", self.uhn.beta, steps=steps)
        return runtime.host(out).astype(np.float64)


def _cue(pattern: np.ndarray, cue: str, level: float, rng: np.random.Generator) -> np.ndarray:
    if cue == "flip":
        return flip_bits(pattern, level, rng)
    if cue == "mask":
        out = pattern.copy()
        out[rng.choice(out.size, size=int(round(level * out.size)), replace=False)] = 0.0
        return out
    return pattern + level * rng.standard_normal(pattern.size)


#: Overlaps (range -1..1) closer than this to the largest one count as a tie: far above float32
#: rounding (~1e-6), far below the 2 / n that separates distinct +-1 patterns.
TIE_TOLERANCE = 1e-4


def _retrieved_index(overlaps: np.ndarray) -> np.ndarray:
    """Per trial, the pattern with the largest overlap, or -1 where several share it.

    A state that mixes patterns (a metastable state of Ramsauer et al. 2020, e.g. about the
    mean of two patterns the cue is nearly equally close to) has equal or nearly equal
    overlaps with them; a plain argmax would name one by rounding and differ between
    backends and dtypes.
    """
    tied = overlaps >= overlaps.max(1, keepdims=True) - TIE_TOLERANCE
    return np.where(tied.sum(1) == 1, overlaps.argmax(1), -1)


@protocol("modern.retrieval")
def retrieval(
    *,
    n: Annotated[int, Int(2, 100_000)] = 64,
    patterns: Annotated[int, Int(1, 1_000_000)] = 1000,
    beta: Annotated[float, Real(0, 1e6, low_open=True)] = 4.0,
    cue: Annotated[str, Choice(*CUES)] = "flip",
    level: Annotated[float, Real(0, 100)] = 0.2,
    steps: Annotated[int, Int(1, 10_000)] = 1,
    trials: Annotated[int, Int(1, 1_000_000)] = 100,
    common_patterns: Annotated[bool, Flag()] = False,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """One- (or few-) step retrieval in a modern Hopfield network (Ramsauer et al. 2020).

    Each trial stores its own ``patterns`` random +-1 patterns of ``n`` units and cues
    with the first one corrupted by ``cue``: "flip" (a fraction ``level`` of signs
    flipped), "mask" (a fraction ``level`` set to 0) or "noise" (Gaussian noise of
    standard deviation ``level``). Records the ``overlap`` xi_1 . out / n, the mean
    squared ``error`` per unit, the ``retrieved`` pattern index (largest overlap; -1 for a
    metastable mixture, where several patterns share the largest overlap) and whether it is
    ``correct`` (the cued pattern alone has the largest overlap). With ``common_patterns`` the
    patterns are the trial's common patterns (``networks._assoc.common_patterns``): the first n
    units of those any other protocol with the option (and ``vector_hash.continuum``) stores with
    the same seed.
    """
    if cue != "noise":
        check("level", level, Real(0, 1))
    if patterns * n * trials > 2**31:
        raise ConfigError(f"patterns x n x trials = {patterns * n * trials} stored values; at most 2**31 fit, use fewer trials")
    runtime = resolve(backend, device, dtype)
    count = patterns
    rngs = trial_generators(seed, trials)
    xs = np.empty((trials, count, n))
    cues = np.empty((trials, n))
    for t in range(trials):
        xs[t] = shared_patterns(rngs[t], count, n) if common_patterns else rngs[t].integers(0, 2, size=(count, n)) * 2.0 - 1.0
        cues[t] = _cue(xs[t, 0], cue, level, rngs[t])
    stored = runtime.array(xs)
    out = runtime.host(retrieve(runtime, stored, stored, runtime.array(cues), "dot", "softmax", beta * n, steps=steps))
    out = out.astype(np.float64)
    overlaps = np.einsum("tpi,ti->tp", xs, out) / n
    dims = ("trial",)
    retrieved = _retrieved_index(overlaps)
    return xr.Dataset(
        {
            "overlap": (dims, overlaps[:, 0], {"long_name": "overlap xi_1 . out / n with the cued pattern"}),
            "error": (dims, ((out - xs[:, 0]) ** 2).mean(1), {"long_name": "mean squared error per unit"}),
            "retrieved": (
                dims, retrieved,
                {"long_name": "index of the pattern with the largest overlap; -1 where several share it (a mixture state)"},
            ),
            "correct": (dims, retrieved == 0, {"long_name": "the cued pattern has the largest overlap"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "modern Hopfield network (Ramsauer et al. 2020)", "cue": cue},
    )

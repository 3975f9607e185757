"""Modern continuous Hopfield networks (Ramsauer et al. 2020) and the ``modern.retrieval`` protocol.

Ramsauer, Schaefl, Lehner, et al. (2020), "Hopfield networks is all you need"
(arXiv:2008.02217, ICLR 2021). Stored patterns x_1..x_P (rows of X) and a state
xi evolve by the update xi <- X^T softmax(beta X xi), which descends the energy

    E(xi) = -lse(beta, X xi) + 1/2 xi . xi + log(P) / beta + 1/2 M^2,
    lse(beta, z) = log(sum_mu exp(beta z_mu)) / beta,  M = max_mu |x_mu|.

Well-separated patterns are retrieved in one update (their Theorem 4); a
state whose softmax weights are spread over several patterns sits near a
metastable state (a mixture), the global fixed point at small beta is the mean.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.networks._assoc import (
    check_choice,
    check_dtype,
    check_fraction,
    check_int,
    check_positive,
    flip_bits,
    resolve_backend,
    trial_generators,
)
from plasticity.protocols import protocol

__all__ = ["CUES", "ModernHopfield", "retrieval"]

CUES = ("flip", "mask", "noise")


@nb.njit(parallel=True, cache=True)
def _modern_kernel(patterns, states, beta, steps):  # pragma: no cover - compiled
    """``steps`` updates xi <- X^T softmax(beta X xi) for each state, in place; patterns (1 or trials, P, d)."""
    trials, d = states.shape
    count = patterns.shape[1]
    shared = patterns.shape[0] == 1
    for t in nb.prange(trials):
        x = patterns[0] if shared else patterns[t]
        scores = np.empty(count)
        new = np.empty(d)
        for _ in range(steps):
            top = -np.inf
            for mu in range(count):
                acc = 0.0
                for i in range(d):
                    acc += x[mu, i] * states[t, i]
                scores[mu] = beta * acc
                if scores[mu] > top:
                    top = scores[mu]
            total = 0.0
            for mu in range(count):
                scores[mu] = math.exp(scores[mu] - top)
                total += scores[mu]
            new[:] = 0.0
            for mu in range(count):
                p = scores[mu] / total
                for i in range(d):
                    new[i] += p * x[mu, i]
            for i in range(d):
                states[t, i] = new[i]


def _softmax_rows(xp, z):
    if xp is np:
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)
    return xp.softmax(z, dim=-1)


def _update_array(xp, patterns, states, beta, steps):
    """Vectorised twin of ``_modern_kernel`` (numpy or torch)."""
    shared = patterns.shape[0] == 1
    for _ in range(steps):
        if shared:
            p = _softmax_rows(xp, beta * (states @ patterns[0].T))
            states = p @ patterns[0]
        else:
            scores = xp.matmul(patterns, states[:, :, None])[:, :, 0]
            p = _softmax_rows(xp, beta * scores)
            states = xp.matmul(p[:, None, :], patterns)[:, 0]
    return states


def _run(patterns, cues, beta, steps, backend, dtype, device=None) -> np.ndarray:
    if backend == "numba":
        states = np.array(cues, dtype=np.float64, copy=True)
        _modern_kernel(np.ascontiguousarray(patterns, dtype=np.float64), states, float(beta), int(steps))
        return states.astype(dtype)
    if backend == "numpy":
        return _update_array(np, patterns.astype(dtype), cues.astype(dtype), dtype.type(beta), steps)
    import torch

    tdtype = getattr(torch, dtype.name)
    out = _update_array(
        torch, torch.as_tensor(patterns, dtype=tdtype, device=device),
        torch.as_tensor(cues, dtype=tdtype, device=device), beta, steps,
    )
    return out.cpu().numpy()


class ModernHopfield:
    """A modern continuous Hopfield network (Ramsauer et al. 2020) storing the rows of ``patterns``.

    Example::

        net = ModernHopfield(patterns, beta=4.0)
        out = net.retrieve(cues, steps=1)
        net.energy(out), net.weights(out).max(1)  # energy and the largest softmax weight
    """

    def __init__(self, patterns, *, beta: float = 1.0, dtype: str = "float32"):
        self.beta = check_positive("beta", beta)
        self.dtype = check_dtype(dtype)
        x = np.asarray(patterns, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.all(np.isfinite(x)):
            raise ConfigError(f"patterns must be a finite (patterns, units) array with at least one pattern; got shape {x.shape}")
        self._patterns = np.ascontiguousarray(x)

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
        return _softmax_rows(np, self.beta * self._states(states) @ self._patterns.T)

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
        steps = check_int("steps", steps)
        dev = resolve_backend(backend, device)
        return _run(self._patterns[None], self._states(cues), self.beta, steps, backend, self.dtype, dev)


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
    n: int = 64,
    patterns: int = 1000,
    beta: float = 4.0,
    cue: str = "flip",
    level: float = 0.2,
    steps: int = 1,
    trials: int = 100,
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
    ``correct`` (the cued pattern alone has the largest overlap).
    """
    n = check_int("n", n, minimum=2)
    count = check_int("patterns", patterns)
    beta = check_positive("beta", beta)
    check_choice("cue", cue, CUES)
    if cue == "noise":
        level = check_positive("level", level) if level else 0.0
    else:
        level = check_fraction("level", level)
    steps = check_int("steps", steps)
    trials = check_int("trials", trials)
    np_dtype = check_dtype(dtype)
    dev = resolve_backend(backend, device)
    rngs = trial_generators(seed, trials)
    xs = np.empty((trials, count, n))
    cues = np.empty((trials, n))
    for t in range(trials):
        xs[t] = rngs[t].integers(0, 2, size=(count, n)) * 2.0 - 1.0
        cues[t] = _cue(xs[t, 0], cue, level, rngs[t])
    out = _run(xs, cues, beta, steps, backend, np_dtype, dev).astype(np.float64)
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

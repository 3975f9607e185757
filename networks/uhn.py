"""Universal Hopfield networks (Millidge et al. 2022) and the ``uhn.retrieval`` protocol.

Millidge, Salvatori, Song, Lukasiewicz and Bogacz (2022), "Universal Hopfield
Networks: a general framework for single-shot associative memory models"
(ICML, PMLR 162:15561). Single-shot retrieval is

    output = P^T sep(sim(M, q))

with a memory M (rows: stored keys), a projection P (rows: the values returned;
P = M for auto-association, anything else for hetero-association), a similarity
and a separation function. Self-attention is the case sim = dot product,
sep = softmax; linear attention is sim = dot product with the unnormalised separation.
The modern Hopfield network (Ramsauer et al. 2020, :mod:`plasticity.networks.modern`) is a
preset of this one: dot-product similarity, softmax separation, P = M, iterated.

Choices made here so that retrieval works out of the box:

* similarities are per unit, so beta means the same at every image size:
  ``dot`` = q . m / D, ``euclidean`` = -sqrt(mean (q - m)^2), ``manhattan`` = -mean |q - m|;
* the separations ``softmax`` = softmax(beta s), ``max`` = one-hot argmax,
  ``identity`` = s - min s and ``polynomial`` = (s - min s)^power (the last two normalised to
  sum one) return convex weights, so the output is a mixture of stored values in their own
  units; ``unnormalised`` = beta s is the raw similarity times a gain, so that with dot-product
  similarity and beta = D the output is exactly linear attention P^T M q;
* the projection is the raw stored values, never a normalised copy.

Retrieval is the registered fast path ``uhn.retrieve`` (a numba kernel; one vectorised form
for numpy and torch), whose twin is ``tests/reference.py``'s ``uhn_retrieve``.
"""

from __future__ import annotations

import math
from typing import Annotated

import numba as nb
import numpy as np
import xarray as xr

from plasticity.backends.runtime import Runtime, register_fast_path, resolve
from plasticity.errors import ConfigError
from plasticity.networks._assoc import trial_generators
from plasticity.networks.datasets import digits
from plasticity.params import Choice, Int, Real, check
from plasticity.protocols import protocol

__all__ = ["SIMILARITIES", "SEPARATIONS", "DATASETS", "UniversalHopfield", "retrieval", "nearest_correct", "retrieve"]

SIMILARITIES = ("dot", "euclidean", "manhattan")
SEPARATIONS = ("identity", "softmax", "max", "polynomial", "unnormalised")
DATASETS = ("random", "digits")
CUES = ("noise", "mask")
#: Largest polynomial power (beyond it (s - min s)^power underflows for per-unit similarities).
MAX_POWER = 100

_SIM_CODE = {name: code for code, name in enumerate(SIMILARITIES)}
_SEP_CODE = {name: code for code, name in enumerate(SEPARATIONS)}


@nb.njit(parallel=True, cache=True)
def _retrieve_kernel(memory, projection, queries, sim, sep, beta, power, out):  # pragma: no cover - compiled
    """out[b] = P_b^T sep(sim(M_b, q_b)) for each query b; memory (1 or B, P, D), projection (1 or B, P, E)."""
    batch, d = queries.shape
    count = memory.shape[1]
    shared = memory.shape[0] == 1
    for b in nb.prange(batch):
        m = memory[0] if shared else memory[b]
        p = projection[0] if shared else projection[b]
        s = np.empty(count)
        for mu in range(count):
            acc = 0.0
            for i in range(d):
                if sim == 0:
                    acc += queries[b, i] * m[mu, i]
                elif sim == 1:
                    diff = queries[b, i] - m[mu, i]
                    acc += diff * diff
                else:
                    acc += abs(queries[b, i] - m[mu, i])
            if sim == 0:
                s[mu] = acc / d
            elif sim == 1:
                s[mu] = -math.sqrt(acc / d)
            else:
                s[mu] = -acc / d
        top = s.max()
        low = s.min()
        if sep == 1:  # softmax
            for mu in range(count):
                s[mu] = math.exp(beta * (s[mu] - top))
        elif sep == 2:  # max: the first largest
            best = np.argmax(s)
            s[:] = 0.0
            s[best] = 1.0
        elif sep == 4:  # unnormalised
            for mu in range(count):
                s[mu] = beta * s[mu]
        else:  # identity, polynomial
            for mu in range(count):
                s[mu] = s[mu] - low if sep == 0 else (s[mu] - low) ** power
        total = 1.0
        if sep != 4:
            total = s.sum()
            if total <= 0.0:  # all similarities equal: every stored value weighs the same
                s[:] = 1.0
                total = float(count)
        out[b, :] = 0.0
        for mu in range(count):
            w = s[mu] / total
            for e in range(p.shape[1]):
                out[b, e] += w * p[mu, e]


_RETRIEVE = dict(
    description="universal Hopfield retrieval P^T sep(sim(M, q)) for a batch of queries, one memory or one per query",
    twin="tests/reference.py uhn_retrieve (loops over stored patterns)",
)


@register_fast_path("uhn.retrieve", "numba", **_RETRIEVE)
def _retrieve_numba(memory, projection, queries, similarity: str, separation: str, beta: float, power: int):
    out = np.empty((queries.shape[0], projection.shape[2]))
    _retrieve_kernel(np.ascontiguousarray(memory, dtype=np.float64), np.ascontiguousarray(projection, dtype=np.float64),
                     np.ascontiguousarray(queries, dtype=np.float64), _SIM_CODE[similarity], _SEP_CODE[separation],
                     float(beta), int(power), out)
    return out.astype(queries.dtype)


def similarities(xp, memory, queries, similarity: str):
    """Per-unit similarity of each query (B, D) with each row of its memory (1 or B, P, D): (B, P)."""
    d = queries.shape[-1]
    m = memory[0] if memory.shape[0] == 1 else memory
    if similarity == "dot":
        return (queries @ m.T if m.ndim == 2 else xp.matmul(m, queries[:, :, None])[:, :, 0]) / d
    if similarity == "euclidean" and m.ndim == 2:
        sq = (queries**2).sum(1)[:, None] + (m**2).sum(1)[None, :] - 2.0 * (queries @ m.T)
        return -xp.sqrt(xp.clip(sq, 0.0, None) / d)
    rows = m[None] if m.ndim == 2 else m
    out = []
    step = max(1, int(2**22 // max(1, rows.shape[-2] * d)))  # bounded (B, P, D) temporaries
    for start in range(0, queries.shape[0], step):
        diff = queries[start : start + step, None, :] - (rows if rows.shape[0] == 1 else rows[start : start + step])
        out.append(-xp.sqrt((diff**2).sum(-1) / d) if similarity == "euclidean" else -xp.abs(diff).sum(-1) / d)
    return xp.concatenate(out) if xp is np else xp.cat(out)


def separate(xp, scores, separation: str, beta: float, power: int):
    """sep(scores) row by row (see the module docstring)."""
    if separation == "unnormalised":
        return beta * scores
    if separation == "softmax":
        top = scores.max(1, keepdims=True) if xp is np else scores.max(1, keepdim=True).values
        e = xp.exp(beta * (scores - top))
        return e / e.sum(1, keepdims=True) if xp is np else e / e.sum(1, keepdim=True)
    if separation == "max":
        if xp is not np:
            return xp.nn.functional.one_hot(scores.argmax(1), scores.shape[1]).to(scores.dtype)
        w = np.zeros_like(scores)
        w[np.arange(scores.shape[0]), scores.argmax(1)] = 1.0
        return w
    low = scores.min(1, keepdims=True) if xp is np else scores.min(1, keepdim=True).values
    w = scores - low
    if separation == "polynomial":
        w = w**power
    total = w.sum(1, keepdims=True) if xp is np else w.sum(1, keepdim=True)
    flat = total <= 0  # all similarities equal: every stored value weighs the same
    w = xp.where(flat, xp.ones_like(w), w)
    total = xp.where(flat, xp.full_like(total, scores.shape[1]), total)
    return w / total


@register_fast_path("uhn.retrieve", ("numpy", "torch"), **_RETRIEVE)
def _retrieve_array(memory, projection, queries, similarity: str, separation: str, beta: float, power: int):
    import sys

    xp = np if isinstance(queries, np.ndarray) else sys.modules["torch"]
    w = separate(xp, similarities(xp, memory, queries, similarity), separation, beta, power)
    if projection.shape[0] == 1:
        return w @ projection[0]
    return xp.matmul(w[:, None, :], projection)[:, 0]


def retrieve(runtime: Runtime, memory, projection, queries, similarity: str, separation: str, beta: float,
             power: int = 1, steps: int = 1):
    """``steps`` retrievals q <- P^T sep(sim(M, q)) (more than one only when P has M's shape) on
    ``runtime``'s arrays: memory (1 or B, P, D), projection (1 or B, P, E), queries (B, D)."""
    state = queries
    for _ in range(steps):
        state = runtime.fast_path("uhn.retrieve")(memory, projection, state, similarity, separation, beta, power)
    return state


class UniversalHopfield:
    """A universal Hopfield network: output = P^T sep(sim(M, q)) (Millidge et al. 2022).

    ``memory`` (patterns, D) holds the keys; ``projection`` (patterns, D_out) the values
    returned (default: ``memory`` itself, auto-association). ``similarity`` is one of
    "dot", "euclidean", "manhattan"; ``separation`` one of "identity", "softmax" (with
    ``beta``), "max", "polynomial" (with ``power``), "unnormalised" (gain ``beta``).

    Example::

        net = UniversalHopfield(images, similarity="manhattan", separation="softmax", beta=100)
        restored = net.retrieve(noisy_images)
    """

    def __init__(
        self,
        memory,
        projection=None,
        *,
        similarity: str = "manhattan",
        separation: str = "softmax",
        beta: float = 100.0,
        power: int = 10,
        dtype: str = "float32",
    ):
        self.similarity = check("similarity", similarity, Choice(*SIMILARITIES))
        self.separation = check("separation", separation, Choice(*SEPARATIONS))
        self.beta = check("beta", beta, Real(0, None, low_open=True))
        self.power = check("power", power, Int(1, MAX_POWER))
        self.dtype = check("dtype", dtype, Choice("float32", "float64"))
        m = np.asarray(memory, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1 or not np.all(np.isfinite(m)):
            raise ConfigError(f"memory must be a finite (patterns, units) array with at least one pattern; got shape {m.shape}")
        p = m if projection is None else np.asarray(projection, dtype=np.float64)
        if p.ndim == 1:
            p = p[:, None]
        if p.ndim != 2 or p.shape[0] != m.shape[0] or not np.all(np.isfinite(p)):
            raise ConfigError(
                f"projection must be a finite (patterns, outputs) array with one row per memory row "
                f"({m.shape[0]}); got shape {p.shape}"
            )
        self._memory = np.ascontiguousarray(m)
        self._projection = np.ascontiguousarray(p)

    @property
    def patterns(self) -> np.ndarray:
        """The stored keys (memory rows), float64 (a copy)."""
        return self._memory.copy()

    @property
    def projection(self) -> np.ndarray:
        """The stored values returned by retrieval, float64 (a copy)."""
        return self._projection.copy()

    def _queries(self, queries) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float64)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self._memory.shape[1]:
            raise ConfigError(f"queries must be (batch, {self._memory.shape[1]}); got shape {q.shape}")
        return q

    def scores(self, queries) -> np.ndarray:
        """Similarities sim(M, q) of each query with each stored key, (batch, patterns), float64."""
        return similarities(np, self._memory[None], self._queries(queries), self.similarity)

    def weights(self, queries) -> np.ndarray:
        """sep(sim(M, q)): the weight of each stored value in the output (rows sum to one except
        for the unnormalised separation), float64."""
        return separate(np, self.scores(queries), self.separation, self.beta, self.power)

    def energy(self, queries) -> np.ndarray:
        """-log sum_mu exp(beta sim_mu) / beta for each query: the energy whose gradient step on the
        separation weights is the retrieval (the modern-Hopfield energy without the quadratic term)."""
        s = self.scores(queries)
        top = s.max(1)
        return -(top + np.log(np.exp(self.beta * (s - top[:, None])).sum(1)) / self.beta)

    def retrieve(self, queries, *, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """P^T sep(sim(M, q)) for each query (row): the retrieved values, (batch, D_out), float64."""
        runtime = resolve(backend, device, self.dtype)
        q = self._queries(queries)
        out = retrieve(runtime, runtime.array(self._memory[None]), runtime.array(self._projection[None]), runtime.array(q),
                       self.similarity, self.separation, self.beta, self.power)
        return runtime.host(out).astype(np.float64)


def nearest_correct(retrieved: np.ndarray, stored: np.ndarray, cued: np.ndarray | None = None) -> np.ndarray:
    """Per retrieval (row of ``retrieved``), whether it is strictly nearer (Euclidean) to its cued
    stored pattern (``stored[cued]``; default ``stored[i]`` for row i) than to any other stored pattern.

    The nearest-pattern criterion of Millidge et al. (2022): a blurred average of several
    patterns, or another stored pattern, is a failure whatever its squared error.
    """
    cued = np.arange(retrieved.shape[0]) if cued is None else np.asarray(cued)
    sq = (retrieved**2).sum(1)[:, None] + (stored**2).sum(1)[None, :] - 2.0 * retrieved @ stored.T
    own = sq[np.arange(sq.shape[0]), cued]
    sq[np.arange(sq.shape[0]), cued] = np.inf
    return own < sq.min(1)


def _dataset(name: str, count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "digits":
        images = digits()
        if count > images.shape[0]:
            raise ConfigError(f"patterns must be at most {images.shape[0]} for dataset 'digits'; got {count}")
        return images[rng.choice(images.shape[0], size=count, replace=False)].copy()
    return rng.random((count, n))


@protocol("uhn.retrieval")
def retrieval(
    *,
    similarity: Annotated[str, Choice(*SIMILARITIES)] = "manhattan",
    separation: Annotated[str, Choice(*SEPARATIONS)] = "softmax",
    beta: Annotated[float, Real(0, 1e6, low_open=True)] = 100.0,
    power: Annotated[int, Int(1, MAX_POWER)] = 10,
    patterns: Annotated[int, Int(1, 100_000)] = 100,
    cue: Annotated[str, Choice(*CUES)] = "noise",
    sigma: Annotated[float, Real(0, 100)] = 0.2,
    fraction: Annotated[float, Real(0, 1)] = 0.5,
    dataset: Annotated[str, Choice(*DATASETS)] = "digits",
    n: Annotated[int, Int(1, 100_000)] = 64,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Auto-associative retrieval of images in a universal Hopfield network (Millidge et al. 2022).

    Stores ``patterns`` images in [0, 1] ("digits": scikit-learn's 8x8 digits; "random":
    uniform random images of ``n`` pixels), cues each one corrupted by ``cue`` ("noise":
    Gaussian noise of std ``sigma``; "mask": a random ``fraction`` of pixels set to 0) and
    retrieves it in one shot. A retrieval is correct when it is nearer the cued image than
    any other stored image (:func:`nearest_correct`), so the data set's mean image or another
    stored digit counts as a failure. Records the ``accuracy`` (fraction correct) and the mean
    and median squared error, all scalars, so sweeps over ``patterns`` stack.
    """
    runtime = resolve(backend, device, dtype)
    rng = trial_generators(seed, 1)[0]
    images = _dataset(dataset, patterns, n, rng)
    if cue == "noise":
        queries = images + sigma * rng.standard_normal(images.shape)
    else:
        queries = np.where(rng.random(images.shape) < fraction, 0.0, images)
    stored = runtime.array(images[None])
    out = runtime.host(retrieve(runtime, stored, stored, runtime.array(queries), similarity, separation, beta, power))
    out = out.astype(np.float64)
    error = ((out - images) ** 2).sum(1)
    correct = nearest_correct(out, images)
    return xr.Dataset(
        {
            "accuracy": ((), correct.mean(), {"long_name": "fraction of stored images retrieved (nearest to the cued image)"}),
            "mean_error": ((), error.mean(), {"long_name": "mean squared error of the retrieved images"}),
            "median_error": ((), np.median(error), {"long_name": "median squared error of the retrieved images"}),
        },
        attrs={"model": "universal Hopfield network (Millidge et al. 2022)", "pixels": images.shape[1]},
    )

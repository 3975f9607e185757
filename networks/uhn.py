"""Universal Hopfield networks (Millidge et al. 2022) and the ``uhn.retrieval`` protocol.

Millidge, Salvatori, Song, Lukasiewicz and Bogacz (2022), "Universal Hopfield
Networks: a general framework for single-shot associative memory models"
(ICML, PMLR 162:15561). Single-shot retrieval is

    output = P^T sep(sim(M, q))

with a memory M (rows: stored keys), a projection P (rows: the values returned;
P = M for auto-association, anything else for hetero-association), a similarity
and a separation function. Self-attention is the case sim = dot product,
sep = softmax.

Choices made here so that retrieval works out of the box:

* similarities are per unit, so beta means the same at every image size:
  ``dot`` = q . m / D, ``euclidean`` = -sqrt(mean (q - m)^2), ``manhattan`` = -mean |q - m|;
* every separation returns weights that sum to one, so the output is a convex
  combination of stored values in their own units (no rescaling of the output):
  ``softmax`` = softmax(beta s), ``max`` = one-hot argmax, ``identity`` = s - min s,
  ``polynomial`` = (s - min s)^power, the last two normalised to sum one;
* the projection is the raw stored values, never a normalised copy.
"""

from __future__ import annotations

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
    resolve_backend,
    seed_sequence,
)
from plasticity.networks.datasets import digits
from plasticity.protocols import protocol

__all__ = ["SIMILARITIES", "SEPARATIONS", "DATASETS", "UniversalHopfield", "retrieval"]

SIMILARITIES = ("dot", "euclidean", "manhattan")
SEPARATIONS = ("identity", "softmax", "max", "polynomial")
DATASETS = ("random", "digits")
CUES = ("noise", "mask")

_SIM_CODE = {name: code for code, name in enumerate(SIMILARITIES)}


@nb.njit(parallel=True, cache=True)
def _similarity_kernel(queries, memory, code, out):  # pragma: no cover - compiled
    """Per-unit similarity of every query with every memory row (0 dot, 1 euclidean, 2 manhattan)."""
    q_count, d = queries.shape
    count = memory.shape[0]
    for a in nb.prange(q_count):
        for mu in range(count):
            acc = 0.0
            for i in range(d):
                if code == 0:
                    acc += queries[a, i] * memory[mu, i]
                elif code == 1:
                    diff = queries[a, i] - memory[mu, i]
                    acc += diff * diff
                else:
                    acc += abs(queries[a, i] - memory[mu, i])
            if code == 0:
                out[a, mu] = acc / d
            elif code == 1:
                out[a, mu] = -np.sqrt(acc / d)
            else:
                out[a, mu] = -acc / d


def _similarity_array(xp, queries, memory, similarity):
    """Vectorised twin of ``_similarity_kernel`` (numpy or torch)."""
    d = queries.shape[1]
    if similarity == "dot":
        return queries @ memory.T / d
    if similarity == "euclidean":
        sq = (queries**2).sum(1)[:, None] + (memory**2).sum(1)[None, :] - 2.0 * (queries @ memory.T)
        return -xp.sqrt(xp.clip(sq, 0.0, None) / d)
    if xp is not np:
        return -xp.cdist(queries, memory, p=1.0) / d
    out = np.empty((queries.shape[0], memory.shape[0]), dtype=queries.dtype)
    step = max(1, int(2**22 // max(1, memory.size)))
    for start in range(0, queries.shape[0], step):
        block = queries[start : start + step]
        out[start : start + step] = -np.abs(block[:, None, :] - memory[None, :, :]).sum(-1) / d
    return out


def _separate(xp, scores, separation, beta, power):
    if separation == "softmax":
        if xp is np:
            z = beta * (scores - scores.max(1, keepdims=True))
            e = np.exp(z)
            return e / e.sum(1, keepdims=True)
        return xp.softmax(beta * scores, dim=1)
    if separation == "max":
        w = xp.zeros_like(scores)
        index = scores.argmax(1)
        w[xp.arange(scores.shape[0]), index] = 1.0
        return w
    low = scores.min(1, keepdims=True) if xp is np else scores.min(1, keepdim=True).values
    w = scores - low
    if separation == "polynomial":
        w = w**power
    total = w.sum(1, keepdims=True) if xp is np else w.sum(1, keepdim=True)
    flat = total <= 0
    # all similarities equal: every stored value weighs the same
    w = xp.where(flat, 1.0, w)
    total = xp.where(flat, float(scores.shape[1]), total)
    return w / total


class UniversalHopfield:
    """A universal Hopfield network: output = P^T sep(sim(M, q)) (Millidge et al. 2022).

    ``memory`` (patterns, D) holds the keys; ``projection`` (patterns, D_out) the values
    returned (default: ``memory`` itself, auto-association). ``similarity`` is one of
    "dot", "euclidean", "manhattan"; ``separation`` one of "identity", "softmax" (with
    ``beta``), "max", "polynomial" (with ``power``).

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
        self.similarity = check_choice("similarity", similarity, SIMILARITIES)
        self.separation = check_choice("separation", separation, SEPARATIONS)
        self.beta = check_positive("beta", beta)
        self.power = check_int("power", power)
        self.dtype = check_dtype(dtype)
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

    def scores(self, queries, *, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """Similarities sim(M, q) of each query with each stored key, (batch, patterns)."""
        return self._weights(queries, backend, device, separate=False)

    def weights(self, queries, *, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """sep(sim(M, q)): the weight of each stored value in the output, rows sum to one."""
        return self._weights(queries, backend, device, separate=True)

    def _weights(self, queries, backend, device, *, separate):
        dev = resolve_backend(backend, device)
        q = self._queries(queries)
        if backend == "torch":
            import torch

            tdtype = getattr(torch, self.dtype.name)
            s = _similarity_array(
                torch, torch.as_tensor(q, dtype=tdtype, device=dev), torch.as_tensor(self._memory, dtype=tdtype, device=dev),
                self.similarity,
            )
            return (_separate(torch, s, self.separation, self.beta, self.power) if separate else s).cpu().numpy()
        if backend == "numba":
            s = np.empty((q.shape[0], self._memory.shape[0]))
            _similarity_kernel(q, self._memory, _SIM_CODE[self.similarity], s)
            s = s.astype(self.dtype)
        else:
            s = _similarity_array(np, q.astype(self.dtype), self._memory.astype(self.dtype), self.similarity)
        return _separate(np, s, self.separation, self.dtype.type(self.beta), self.power) if separate else s

    def energy(self, queries, *, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """-log sum_mu exp(beta sim_mu) / beta for each query: the energy whose gradient step on the
        separation weights is the retrieval (the modern-Hopfield energy without the quadratic term)."""
        s = self.scores(queries, backend=backend, device=device).astype(np.float64)
        top = s.max(1)
        return -(top + np.log(np.exp(self.beta * (s - top[:, None])).sum(1)) / self.beta)

    def retrieve(self, queries, *, backend: str = "numba", device: str | None = None) -> np.ndarray:
        """P^T sep(sim(M, q)) for each query (row): the retrieved values, (batch, D_out)."""
        w = self.weights(queries, backend=backend, device=device).astype(np.float64)
        return w @ self._projection


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
    similarity: str = "manhattan",
    separation: str = "softmax",
    beta: float = 100.0,
    power: int = 10,
    patterns: int = 100,
    cue: str = "noise",
    sigma: float = 0.2,
    fraction: float = 0.5,
    dataset: str = "digits",
    n: int = 64,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Auto-associative retrieval of images in a universal Hopfield network (Millidge et al. 2022).

    Stores ``patterns`` images in [0, 1] ("digits": scikit-learn's 8x8 digits; "random":
    uniform random images of ``n`` pixels), cues each one corrupted by ``cue`` ("noise":
    Gaussian noise of std ``sigma``; "mask": a random ``fraction`` of pixels set to 0) and
    retrieves it in one shot. A retrieval is correct when its squared error is at most
    60 D / 784 for D pixels (the paper's MNIST criterion scaled to the image size).
    Records the ``accuracy`` (fraction correct) and the mean and median squared error,
    all scalars, so sweeps over ``patterns`` stack.
    """
    check_choice("similarity", similarity, SIMILARITIES)
    check_choice("separation", separation, SEPARATIONS)
    beta = check_positive("beta", beta)
    count = check_int("patterns", patterns)
    check_choice("cue", cue, CUES)
    check_choice("dataset", dataset, DATASETS)
    n = check_int("n", n)
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"sigma must be a number >= 0; got {sigma!r}")
    fraction = check_fraction("fraction", fraction)
    rng = np.random.default_rng(seed_sequence(seed))
    images = _dataset(dataset, count, n, rng)
    if cue == "noise":
        queries = images + sigma * rng.standard_normal(images.shape)
    else:
        queries = np.where(rng.random(images.shape) < fraction, 0.0, images)
    net = UniversalHopfield(images, similarity=similarity, separation=separation, beta=beta, power=power, dtype=dtype)
    out = net.retrieve(queries, backend=backend, device=device)
    d = images.shape[1]
    error = ((out - images) ** 2).sum(1)
    correct = error <= 60.0 * d / 784.0
    return xr.Dataset(
        {
            "accuracy": ((), correct.mean(), {"long_name": "fraction of stored images retrieved correctly"}),
            "mean_error": ((), error.mean(), {"long_name": "mean squared error of the retrieved images"}),
            "median_error": ((), np.median(error), {"long_name": "median squared error of the retrieved images"}),
        },
        attrs={"model": "universal Hopfield network (Millidge et al. 2022)", "pixels": d},
    )

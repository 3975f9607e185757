"""Dense associative memories of +-1 units and the ``dense.capacity`` protocol.

Krotov and Hopfield (2016, NeurIPS, "Dense associative memory for pattern
recognition") replace the quadratic Hopfield energy by E(s) = -sum_mu F(xi_mu . s)
with the polynomial interaction F(x) = x^n (n >= 2; n = 2 is the classical
network); the capacity grows like N^(n-1). Demircigil, Heusel, Loewe, Upgang and
Vermet (2017, J. Stat. Phys. 168:288) take F(x) = exp(x) and store exponentially
many patterns.

A unit update sets s_i to the sign of
h_i = sum_mu [F(xi_mu,i + m_mu,i) - F(-xi_mu,i + m_mu,i)],  m_mu,i = sum_{j != i} xi_mu,j s_j,
which is the energy difference between s_i = -1 and s_i = +1, so asynchronous
updates never increase the energy. With M_mu = xi_mu . s and G(m) = F(m+1) - F(m-1),
h_i = sum_mu xi_mu,i G(M_mu - xi_mu,i s_i); asynchronous sweeps keep M up to date in
O(P) per flip, synchronous steps are two matrix products per batch.

Numerics: the polynomial form is evaluated on integers (exact in float64, so every
backend sees the same ties) while N^n < 2^50, else on x / N (a positive rescaling
that leaves every sign unchanged); the exponential form is evaluated as
exp(M - max M), also a positive rescaling. ``energy`` returns -sum_mu (xi_mu . s)^n for
the polynomial form and -log sum_mu exp(xi_mu . s) for the exponential form (the log
of minus the Demircigil energy, which keeps its ordering without overflow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import xarray as xr

from plasticity.errors import ConfigError
from plasticity.networks._assoc import (
    BinaryMemory,
    check_binary,
    check_choice,
    check_dtype,
    check_fraction,
    check_int,
    count_patterns,
    flip_bits,
    order_into,
    order_seeds,
    resolve_backend,
    sweep_orders,
    trial_generators,
)
from plasticity.networks.hopfield import UPDATES
from plasticity.protocols import protocol

__all__ = ["SEPARATIONS", "DenseAssociativeMemory", "DenseRetrieval", "capacity"]

SEPARATIONS = ("polynomial", "exp")


def _poly_scale(n_units: int, power: int) -> float:
    return 1.0 if power * math.log2(n_units + 1) < 50 else 1.0 / n_units


# ----------------------------------------------------------------------------- kernels


@nb.njit(cache=True)
def _unit_field(xt_i, overlaps, s_i, exponential, power, scale):  # pragma: no cover - compiled
    """h_i = sum_mu xi_mu,i G(M_mu - xi_mu,i s_i) for one unit (up to a positive factor)."""
    count = overlaps.shape[0]
    h = 0.0
    if exponential:
        top = overlaps[0]
        for mu in range(1, count):
            if overlaps[mu] > top:
                top = overlaps[mu]
        for mu in range(count):
            h += xt_i[mu] * math.exp(overlaps[mu] - xt_i[mu] * s_i - top)
    else:
        for mu in range(count):
            m = overlaps[mu] - xt_i[mu] * s_i
            up = (m + 1.0) * scale
            down = (m - 1.0) * scale
            h += xt_i[mu] * (up**power - down**power)
    return h


@nb.njit(parallel=True, cache=True)
def _dense_async_kernel(xt, states, overlaps, seeds, sweep, rows, flips, exponential, power, scale):  # pragma: no cover
    """Asynchronous sweep ``sweep`` of each trial in ``rows`` (unit order from ``order_into``);
    ``xt`` is (1 or trials, N, P), overlaps (trials, P); a flip updates M in O(P)."""
    n = states.shape[1]
    shared = xt.shape[0] == 1
    for k in nb.prange(rows.shape[0]):
        t = rows[k]
        c = 0 if shared else t
        order = np.empty(n, dtype=np.int64)
        order_into(seeds[t], sweep, order)
        count = 0
        for q in range(n):
            i = order[q]
            s = states[t, i]
            h = _unit_field(xt[c, i], overlaps[t], s, exponential, power, scale)
            new = s
            if h > 0.0:
                new = 1.0
            elif h < 0.0:
                new = -1.0
            if new != s:
                states[t, i] = new
                delta = 2.0 * new
                for mu in range(xt.shape[2]):
                    overlaps[t, mu] += delta * xt[c, i, mu]
                count += 1
        flips[k] = count


def _g(xp, m, exponential, power, scale, top=None):
    if exponential:
        return xp.exp(m - top)
    return ((m + 1.0) * scale) ** power - ((m - 1.0) * scale) ** power


def _dense_async_array(xp, xt, states, overlaps, order, rows, flips, exponential, power, scale):
    """Vectorised twin of ``_dense_async_kernel`` (numpy or torch), batched over trials."""
    n = states.shape[1]
    shared = xt.shape[0] == 1
    flips[:] = 0
    for q in range(n):
        i = order[:, q]
        s = states[rows, i]
        column = xt[0, i] if shared else xt[rows, i]  # (rows, P)
        m = overlaps[rows]
        top = m.max(1, keepdims=True) if xp is np else m.max(1, keepdim=True).values
        arg = m - column * s[:, None]
        if exponential:
            h = (column * xp.exp(arg - top)).sum(1)
        else:
            h = (column * _g(xp, arg, False, power, scale)).sum(1)
        new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, s))
        changed = new != s
        if bool(changed.any()):
            r, v = rows[changed], new[changed]
            states[r, i[changed]] = v
            overlaps[r] += (2.0 * v)[:, None] * column[changed]
            flips[changed] += 1


def _dense_sync_fields(xp, x, states, rows, exponential, power, scale):
    """Fields of a synchronous step for ``rows``: M = S X^T, then h = 1/2 A X + 1/2 s * sum_mu B."""
    shared = x.shape[0] == 1
    s = states[rows]
    if shared:
        m = s @ x[0].T
    else:
        m = xp.matmul(s[:, None, :], x[rows].transpose(1, 2) if xp is not np else x[rows].transpose(0, 2, 1))[:, 0]
    top = None
    if exponential:
        top = m.max(1, keepdims=True) if xp is np else m.max(1, keepdim=True).values
    g_down = _g(xp, m - 1.0, exponential, power, scale, top)
    g_up = _g(xp, m + 1.0, exponential, power, scale, top)
    a = g_down + g_up
    b = (g_down - g_up).sum(1)
    proj = a @ x[0] if shared else xp.matmul(a[:, None, :], x[rows])[:, 0]
    return 0.5 * proj + 0.5 * s * b[:, None]


@dataclass
class DenseRetrieval:
    """Final ``states`` (trials, N), ``sweeps`` that changed the state, ``converged``, ``cycle``
    (synchronous 2-cycle), final ``energy`` and, when recorded, the ``trajectory``."""

    states: np.ndarray
    sweeps: np.ndarray
    converged: np.ndarray
    cycle: np.ndarray
    energy: np.ndarray
    trajectory: np.ndarray | None = None


def _energy(m: np.ndarray, exponential: bool, power: int) -> np.ndarray:
    if exponential:
        top = m.max(1)
        return -(top + np.log(np.exp(m - top[:, None]).sum(1)))
    return -(m**power).sum(1)


def _recall(x, cues, rngs, *, exponential, power, update, max_sweeps, backend, device=None, record=False):
    """Dense dynamics from ``cues`` (trials, N) with pattern stack ``x`` (1 or trials, P, N), float64."""
    trials, n = cues.shape
    scale = _poly_scale(n, power)
    sweeps = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    cycle = np.zeros(trials, dtype=bool)
    active = np.ones(trials, dtype=bool)
    frames = []
    if backend == "torch":
        import torch

        xp = torch
        xs = torch.as_tensor(x, dtype=torch.float64, device=device)
        states = torch.as_tensor(cues, dtype=torch.float64, device=device).clone()

        def host(a):
            return a.cpu().numpy()

        def index(a):
            return torch.as_tensor(a, device=device)
    else:
        xp = np
        xs = np.ascontiguousarray(x, dtype=np.float64)
        states = np.array(cues, dtype=np.float64, copy=True)

        def host(a):
            return a

        def index(a):
            return a

    if record:
        frames.append(host(states).astype(np.int8))
    if update == "async":
        shared = x.shape[0] == 1
        xt = xs.transpose(1, 2) if backend == "torch" else np.ascontiguousarray(xs.transpose(0, 2, 1))
        overlaps = states @ xs[0].T if shared else xp.matmul(states[:, None, :], xt)[:, 0]
        seeds = order_seeds(rngs)
        for sweep in range(max_sweeps):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            if backend == "numba":
                flips = np.zeros(rows.size, dtype=np.int64)
                _dense_async_kernel(xt, states, overlaps, seeds, sweep, rows, flips, exponential, power, scale)
            else:
                order = sweep_orders(seeds[rows], sweep, n)
                flips = xp.zeros(rows.size, dtype=xp.int64) if xp is np else torch.zeros(rows.size, dtype=torch.int64, device=device)
                _dense_async_array(xp, xt, states, overlaps, index(order), index(rows), flips, exponential, power, scale)
                flips = host(flips)
            sweeps[rows[flips > 0]] += 1
            done = rows[flips == 0]
            converged[done] = True
            active[done] = False
            if record:
                frames.append(host(states).astype(np.int8))
    else:
        previous = states.clone() if backend == "torch" else states.copy()
        for _ in range(max_sweeps):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            r = index(rows)
            h = _dense_sync_fields(xp, xs, states, r, exponential, power, scale)
            s = states[r]
            new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, s))
            changed = host((new != s).any(1))
            cycled = host((new == previous[r]).all(1)) & changed
            previous[r] = s
            states[r] = new
            sweeps[rows[changed]] += 1
            converged[rows[~changed]] = True
            cycle[rows[cycled]] = True
            active[rows[~changed | cycled]] = False
            if record:
                frames.append(host(states).astype(np.int8))
    final = host(states)
    m = np.einsum("tpi,ti->tp", x, final) if x.shape[0] > 1 else final @ x[0].T
    trajectory = np.stack(frames) if record else None
    return DenseRetrieval(final, sweeps, converged, cycle, _energy(m, exponential, power), trajectory)


def _check_form(power, separation) -> tuple[int, bool]:
    check_choice("separation", separation, SEPARATIONS)
    if separation == "polynomial":
        power = check_int("power", power, minimum=2)
    return int(power), separation == "exp"


class DenseAssociativeMemory(BinaryMemory):
    """A dense associative memory (Krotov and Hopfield 2016; Demircigil et al. 2017) of +-1 units.

    ``separation="polynomial"`` uses F(x) = x^``power`` (power >= 2), ``"exp"`` uses F(x) = exp(x).

    Example::

        mem = DenseAssociativeMemory(patterns, power=3)
        out = mem.retrieve(cues, update="async", seed=0)
        mem.overlaps(out.states)
    """

    def __init__(self, patterns, *, power: int = 3, separation: str = "polynomial"):
        self.power, self.exponential = _check_form(power, separation)
        self.separation = separation
        self._patterns = check_binary(patterns)

    def energy(self, states) -> np.ndarray:
        """-sum_mu (xi_mu . s)^n (polynomial) or -log sum_mu exp(xi_mu . s) (exp), shape (batch,)."""
        return _energy(self._states(states) @ self._patterns.T, self.exponential, self.power)

    def retrieve(
        self,
        cues,
        *,
        update: str = "async",
        max_sweeps: int = 100,
        seed: int | np.random.SeedSequence = 0,
        backend: str = "numba",
        device: str | None = None,
        record: bool = False,
    ) -> DenseRetrieval:
        """Run the dynamics from each cue (row) until no unit changes or ``max_sweeps`` sweeps/steps."""
        check_choice("update", update, UPDATES)
        max_sweeps = check_int("max_sweeps", max_sweeps)
        dev = resolve_backend(backend, device)
        s = self._states(cues)
        return _recall(
            self._patterns[None], s, trial_generators(seed, s.shape[0]), exponential=self.exponential,
            power=self.power, update=update, max_sweeps=max_sweeps, backend=backend, device=dev, record=record,
        )


@protocol("dense.capacity")
def capacity(
    *,
    n: int = 100,
    power: int = 3,
    separation: str = "polynomial",
    load: float = 1.5,
    patterns: int = 0,
    flip: float = 0.1,
    update: str = "async",
    max_sweeps: int = 100,
    trials: int = 50,
    threshold: float = 0.95,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Retrieval in a dense associative memory, trial by trial (see ``hopfield.capacity``).

    Each trial stores its own ``round(load * n)`` random +-1 patterns (or ``patterns``),
    cues with the first pattern with a fraction ``flip`` flipped, and records ``overlap``,
    ``success`` (overlap >= ``threshold``), ``sweeps``, ``converged``, ``cycle`` and ``energy``.
    The dynamics run in float64 whatever ``dtype`` (the fields are exact integers when they fit).
    """
    n = check_int("n", n, minimum=2)
    power, exponential = _check_form(power, separation)
    check_choice("update", update, UPDATES)
    flip = check_fraction("flip", flip)
    max_sweeps = check_int("max_sweeps", max_sweeps)
    trials = check_int("trials", trials)
    threshold = check_fraction("threshold", threshold)
    check_dtype(dtype)
    dev = resolve_backend(backend, device)
    count = count_patterns(n, load, patterns)
    rngs = trial_generators(seed, trials)
    xs = np.empty((trials, count, n))
    cues = np.empty((trials, n))
    for t in range(trials):
        xs[t] = rngs[t].integers(0, 2, size=(count, n)) * 2.0 - 1.0
        cues[t] = flip_bits(xs[t, 0], flip, rngs[t])
    result = _recall(
        xs, cues, rngs, exponential=exponential, power=power, update=update, max_sweeps=max_sweeps,
        backend=backend, device=dev,
    )
    overlap = np.einsum("ti,ti->t", result.states, xs[:, 0]) / n
    dims = ("trial",)
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "final overlap with the cued pattern"}),
            "success": (dims, overlap >= threshold, {"long_name": f"overlap >= {threshold}"}),
            "sweeps": (dims, result.sweeps, {"long_name": "sweeps (steps) that changed the state"}),
            "converged": (dims, result.converged, {"long_name": "a sweep changed no unit"}),
            "cycle": (dims, result.cycle, {"long_name": "synchronous 2-cycle"}),
            "energy": (dims, result.energy, {"long_name": "energy of the final state (see docstring)"}),
            "num_patterns": ((), count, {"long_name": "stored patterns"}),
            "alpha": ((), count / n, {"long_name": "load (stored patterns / units)"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "dense associative memory", "separation": separation, "power": power, "update": update},
    )

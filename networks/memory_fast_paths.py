"""Registered fast paths of the binary associative memories (Hopfield and dense networks).

Storage and synchronous recall run on the engine (populations, a recurrent projection and a
storage rule; see :mod:`plasticity.networks.hopfield`). What does not fit the engine's
synchronous local step is here, each function registered with
:func:`~plasticity.backends.runtime.register_fast_path` under a name, per backend, with the
twin the tests compare it with:

* ``hopfield.recall.async``: asynchronous random-order recall with incremental fields (a flip of unit i
  adds 2 s_i J[i, :] to the fields: O(N) per flip, never a matrix-vector product per unit);
* ``hopfield.recall.hebbian_async``: the same decisions for Hebbian couplings J = X^T X computed from the
  patterns themselves (N (W s)_i = xi_i . m - P s_i with overlaps m = X s: O(P) per unit check
  and flip), without forming J;
* ``dense.recall.async``: asynchronous recall of a dense associative memory, keeping the
  overlaps M = X s up to date in O(P) per flip;
* ``hopfield.storage.outer_product``, ``hopfield.storage.pseudoinverse`` and ``dense.storage.rows``:
  the batch forms of the library's ``hebbian`` and ``pseudoinverse`` storage rules (one matrix
  product; a pseudo-inverse, which is not local; the patterns themselves as a dense memory's
  rows), exactly what the engine's online storage gives.

Random unit orders are hash-driven shuffles of a per-trial seed (:mod:`._assoc`), so every
backend visits units in the same order. A field of exactly zero keeps the unit's state, so
the energy never increases under asynchronous updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
import scipy.linalg

from plasticity.backends.runtime import register_fast_path
from plasticity.networks._assoc import order_into, sweep_orders
from plasticity.rules.storage import HEBBIAN, PSEUDOINVERSE

__all__ = ["AsyncRecall", "dense_gain"]


@dataclass
class AsyncRecall:
    """What an asynchronous recall returns: final ``states`` (the runtime's array), per trial
    ``sweeps`` that changed the state, ``converged``, ``flips``, the ``energy`` of the final state
    (-1/2 s^T W s for couplings; None for dense memories, whose energy the model computes) and
    the states after every sweep (``frames``, int8) when recorded."""

    states: Any
    sweeps: np.ndarray
    converged: np.ndarray
    flips: np.ndarray
    energy: np.ndarray | None
    frames: list[np.ndarray]


# ----------------------------------------------------------------------------- storage


_OUTER_PRODUCT = dict(
    description="Hebbian couplings J = epochs * X^T X (zero diagonal) for a stack of pattern sets, one matrix product each",
    twin="the engine's online storage with the library rule 'hebbian' (equal exactly: integer couplings)",
    replaces=HEBBIAN,
)


@register_fast_path("hopfield.storage.outer_product", ("numba", "numpy"), **_OUTER_PRODUCT)
def _outer_product_numpy(patterns: np.ndarray, epochs: int, dtype: str) -> np.ndarray:
    """``patterns`` (trials, P, N) -> couplings (trials, N, N) of ``dtype``: one BLAS product per trial."""
    x = np.asarray(patterns, dtype=np.float32)
    j = np.empty((x.shape[0], x.shape[2], x.shape[2]), dtype=dtype)
    for t in range(x.shape[0]):
        np.matmul(x[t].T, x[t], out=j[t], casting="unsafe")
        np.fill_diagonal(j[t], 0.0)
    if epochs != 1:
        j *= epochs
    return j


@register_fast_path("hopfield.storage.outer_product", "torch", **_OUTER_PRODUCT)
def _outer_product_torch(patterns, epochs: int, dtype: str):
    import torch

    x = patterns.to(torch.float32)
    j = torch.matmul(x.transpose(1, 2), x).to(getattr(torch, dtype))
    j.diagonal(dim1=1, dim2=2).zero_()
    return j * epochs if epochs != 1 else j


_PSEUDOINVERSE = dict(
    description="projection couplings W = X^+ X with the diagonal removed, by the Cholesky factor of the "
    "patterns' Gram matrix (a pseudo-inverse: not local)",
    twin="the engine's online storage with the library rule 'pseudoinverse' (Greville's recursion; equal to rounding)",
    replaces=PSEUDOINVERSE,
)


#: A Gram matrix whose smallest Cholesky pivot squared is below this fraction of its largest
#: diagonal entry is taken as singular: a repeated +-1 pattern leaves a pivot of rounding size
#: (about 1e-14 relative) where LAPACK need not fail, while a square random +-1 pattern matrix of
#: 3600 rows, the worst-conditioned full-rank case the memories meet, gives about 1e-4.
SINGULAR_PIVOT = 1e-10


def gram_lower(x: np.ndarray, rows: bool) -> np.ndarray:
    """The lower triangle (float64; the upper one is not written) of the Gram matrix of ``x``'s rows,
    X X^T (``rows``), or of its columns, X^T X, by a symmetric rank-k update (half the products of a
    matrix product). Integer entries whose products sum below 2^24 (+-1 patterns) are exact in
    float32 and computed so, at twice the speed."""
    exact32 = np.abs(x).max(initial=0.0) ** 2 * max(x.shape) < 2**24 and (x == np.round(x)).all()
    if exact32:
        return scipy.linalg.blas.ssyrk(1.0, np.asarray(x, dtype=np.float32), lower=1, trans=0 if rows else 1
                                       ).astype(np.float64)
    return scipy.linalg.blas.dsyrk(1.0, np.asarray(x, dtype=np.float64), lower=1, trans=0 if rows else 1)


def gram_cholesky(gram: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of a symmetric Gram matrix (float64; only its lower triangle is read),
    or None when it is singular (not positive definite, or a pivot whose square is below
    :data:`SINGULAR_PIVOT` times the largest diagonal entry): then a pseudo-inverse needs an SVD."""
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    if gram.shape[0] and np.diagonal(lower).min() ** 2 < SINGULAR_PIVOT * np.diagonal(gram).max():
        return None
    return lower


@register_fast_path("hopfield.storage.pseudoinverse", ("numba", "numpy"), **_PSEUDOINVERSE)
def _pseudoinverse_numpy(patterns: np.ndarray, epochs: int, dtype: str) -> np.ndarray:
    """Re-presenting a stored pattern adds nothing (its residual is zero), so ``epochs`` does not matter.

    Per trial, X (P, N) of full rank: X^+ X = X^T (X X^T)^-1 X = Z^T Z with Z = L^-1 X, L the
    Cholesky factor of the P x P Gram matrix (P <= N; over 10 times faster than an SVD at N ~ 1700),
    and the identity when P > N (the rows span every direction). A singular Gram matrix (repeated
    patterns) goes through numpy's SVD pseudo-inverse."""
    x = np.asarray(patterns, dtype=np.float64)
    trials, count, n = x.shape
    j = np.empty((trials, n, n))
    for t in range(trials):
        xt = x[t]
        lower = gram_cholesky(gram_lower(xt, rows=count <= n))
        if lower is None:
            j[t] = np.linalg.pinv(xt) @ xt
        elif count <= n:
            z = scipy.linalg.solve_triangular(lower, xt, lower=True, check_finite=False)
            j[t] = z.T @ z
        else:
            j[t] = np.eye(n)
        np.fill_diagonal(j[t], 0.0)
    return j.astype(dtype)


@register_fast_path("hopfield.storage.pseudoinverse", "torch", **_PSEUDOINVERSE)
def _pseudoinverse_torch(patterns, epochs: int, dtype: str):
    import torch

    x = patterns.to(torch.float64)
    j = torch.matmul(torch.linalg.pinv(x), x)
    j.diagonal(dim1=1, dim2=2).zero_()
    return j.to(getattr(torch, dtype))


_ROWS = dict(
    description="a dense memory's Hebbian storage with one-hot memory units: the pattern rows themselves, times epochs",
    twin="the engine's online storage with the library rule 'hebbian' (equal exactly)",
    replaces=HEBBIAN,
)


@register_fast_path("dense.storage.rows", ("numba", "numpy"), **_ROWS)
def _rows_numpy(patterns: np.ndarray, epochs: int, dtype: str) -> np.ndarray:
    return np.asarray(patterns, dtype=dtype) * epochs


@register_fast_path("dense.storage.rows", "torch", **_ROWS)
def _rows_torch(patterns, epochs: int, dtype: str):
    import torch

    return patterns.to(getattr(torch, dtype)) * epochs


# ----------------------------------------------------------------------------- asynchronous recall from couplings


@nb.njit(parallel=True, cache=True, nogil=True)
def _async_run_kernel(couplings, states, fields, seeds, rows, first, count, sweeps, flips, converged):  # pragma: no cover
    """Up to ``count`` asynchronous sweeps (numbered from ``first``) for each trial in ``rows``.

    Each trial runs to convergence on its own thread: units in the order of
    ``order_into(seeds[t], sweep)``; a flip of unit i adds 2 s_i J[i, :] to the trial's fields
    (O(N) per flip); a sweep with no flip marks the trial converged.
    """
    n = states.shape[1]
    shared = couplings.shape[0] == 1
    for k in nb.prange(rows.shape[0]):
        t = rows[k]
        c = 0 if shared else t
        f = fields[t]
        order = np.empty(n, dtype=np.int64)
        for sweep in range(first, first + count):
            order_into(seeds[t], sweep, order)
            changed = 0
            for q in range(n):
                i = order[q]
                h = f[i]
                s = states[t, i]
                new = s
                if h > 0.0:
                    new = 1.0
                elif h < 0.0:
                    new = -1.0
                if new != s:
                    states[t, i] = new
                    delta = 2.0 * new
                    row = couplings[c, i]
                    for j in range(n):
                        f[j] += delta * row[j]
                    changed += 1
            flips[t] += changed
            if changed == 0:
                converged[t] = True
                break
            sweeps[t] += 1


def _async_run_array(xp, couplings, states, fields, seeds, rows, first, count, sweeps, flips, converged):
    """Vectorised twin of ``_async_run_kernel`` (numpy or torch): trials batched, units one by one."""
    n = states.shape[1]
    shared = couplings.shape[0] == 1
    torch_like = xp is not np
    for sweep in range(first, first + count):
        rows = rows[~converged[rows]]
        if rows.size == 0:
            return
        order = sweep_orders(seeds[rows], sweep, n)
        r_all = xp.as_tensor(rows, device=states.device) if torch_like else rows
        o_all = xp.as_tensor(order, device=states.device) if torch_like else order
        changed = np.zeros(rows.size, dtype=np.int64)
        for q in range(n):
            i = o_all[:, q]
            s = states[r_all, i]
            h = fields[r_all, i]
            new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, s.double() if torch_like else s))
            new = new.to(s.dtype) if torch_like else new.astype(s.dtype)
            mask = new != s
            hit = mask.cpu().numpy() if torch_like else mask
            if hit.any():
                r, ii, v = r_all[mask], i[mask], new[mask]
                states[r, ii] = v
                coupling_rows = couplings[0, ii] if shared else couplings[r, ii]
                v64 = v.double() if torch_like else v.astype(np.float64)
                fields[r] += (2.0 * v64)[:, None] * (coupling_rows.double() if torch_like else coupling_rows)
                changed += hit
        flips[rows] += changed
        converged[rows[changed == 0]] = True
        sweeps[rows[changed > 0]] += 1


@nb.njit(parallel=True, cache=True, nogil=True)
def _trial_fields_kernel(couplings, states, rows, out):  # pragma: no cover - compiled
    """out[k] = states[rows[k]] @ J accumulated in float64, unit by unit (row-major streaming); J is the
    trial's couplings, or the shared ones. Used for the fields an asynchronous run starts from, so
    that the run stays on numba's threads (no BLAS thread pool competing with them)."""
    n = states.shape[1]
    shared = couplings.shape[0] == 1
    for k in nb.prange(rows.shape[0]):
        t = rows[k]
        c = 0 if shared else t
        f = out[k]
        f[:] = 0.0
        for i in range(n):
            s = np.float64(states[t, i])
            row = couplings[c, i]
            for j in range(n):
                f[j] += s * row[j]


def _trial_fields_numpy(couplings, states, rows):
    """Vectorised twin of ``_trial_fields_kernel``: the same float64 sums in the same order."""
    n = states.shape[1]
    out = np.zeros((rows.size, n))
    for i in range(n):
        row = couplings[0, i][None, :] if couplings.shape[0] == 1 else couplings[rows, i]
        out += states[rows, i].astype(np.float64)[:, None] * row
    return out


def _async_driver(run_sweeps, states, fields, seeds, max_sweeps, record, host) -> AsyncRecall:
    """Sweeps until every trial converged or ``max_sweeps``; one sweep per call when recording."""
    trials = states.shape[0]
    sweeps = np.zeros(trials, dtype=np.int64)
    flips = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    frames = [host(states).astype(np.int8)] if record else []
    runs = [(w, 1) for w in range(max_sweeps)] if record else [(0, max_sweeps)]
    for first, count in runs:
        rows = np.flatnonzero(~converged)
        if rows.size == 0:
            break
        run_sweeps(states, fields, seeds, rows, first, count, sweeps, flips, converged)
        if record:
            frames.append(host(states).astype(np.int8))
    energy = -0.5 * np.einsum("ti,ti->t", host(states).astype(np.float64), host(fields).astype(np.float64))
    return AsyncRecall(states, sweeps, converged, flips, energy, frames)


_ASYNC = dict(
    description="asynchronous random-order recall from couplings (1 or trials, N, N), incremental fields",
    twin="tests/reference.py hopfield_async (a full dot product per unit), with the same unit orders",
)


@register_fast_path("hopfield.recall.async", "numba", **_ASYNC)
def _async_numba(couplings, states, seeds, max_sweeps: int, record: bool) -> AsyncRecall:
    fields = np.empty((states.shape[0], states.shape[1]))
    _trial_fields_kernel(couplings, states, np.arange(states.shape[0]), fields)

    def run(states, fields, seeds, rows, first, count, sweeps, flips, converged):
        _async_run_kernel(couplings, states, fields, seeds, rows, first, count, sweeps, flips, converged)

    return _async_driver(run, states, fields, seeds, max_sweeps, record, np.asarray)


@register_fast_path("hopfield.recall.async", "numpy", **_ASYNC)
def _async_numpy(couplings, states, seeds, max_sweeps: int, record: bool) -> AsyncRecall:
    fields = _trial_fields_numpy(couplings, states, np.arange(states.shape[0]))

    def run(*args):
        _async_run_array(np, couplings, *args)

    return _async_driver(run, states, fields, seeds, max_sweeps, record, np.asarray)


@register_fast_path("hopfield.recall.async", "torch", **_ASYNC)
def _async_torch(couplings, states, seeds, max_sweeps: int, record: bool) -> AsyncRecall:
    import torch

    fields = torch.bmm(states[:, None, :], couplings.expand(states.shape[0], -1, -1))[:, 0].double()

    def run(*args):
        _async_run_array(torch, couplings, *args)

    return _async_driver(run, states, fields, seeds, max_sweeps, record, lambda a: a.cpu().numpy())


# ----------------------------------------------------------------------------- Hebbian recall from the patterns


@nb.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _hebbian_async_kernel(xt, states, overlaps, seeds, rows, count, sweeps, flips, converged):  # pragma: no cover
    """Asynchronous Hebbian recall from the patterns themselves, without forming W.

    ``xt`` is (trials, N, P), ``overlaps`` m = X s (trials, P), both float32. The field
    (J s)_i = xi_i . m - P s_i is an integer below 2^24, exact in float32 in any summation
    order (hence fastmath), so every decision equals the one from the couplings J = X^T X;
    a flip costs O(P), a unit check O(P). Sweep orders as in ``_async_run_kernel``.
    """
    n = states.shape[1]
    p = xt.shape[2]
    for k in nb.prange(rows.shape[0]):
        t = rows[k]
        m = overlaps[t]
        order = np.empty(n, dtype=np.int64)
        for sweep in range(count):
            order_into(seeds[t], sweep, order)
            changed = 0
            for q in range(n):
                i = order[q]
                x = xt[t, i]
                s = states[t, i]
                h = np.float32(0.0)
                for mu in range(p):
                    h += x[mu] * m[mu]
                h -= p * s
                new = s
                if h > 0.0:
                    new = 1.0
                elif h < 0.0:
                    new = -1.0
                if new != s:
                    states[t, i] = new
                    delta = np.float32(2.0 * new)
                    for mu in range(p):
                        m[mu] += delta * x[mu]
                    changed += 1
            flips[t] += changed
            if changed == 0:
                converged[t] = True
                break
            sweeps[t] += 1


def _hebbian_async_array(xt, states, overlaps, seeds, rows, count, sweeps, flips, converged):
    """Vectorised twin of ``_hebbian_async_kernel``: trials batched, units one by one."""
    n, p = xt.shape[1], xt.shape[2]
    for sweep in range(count):
        rows = rows[~converged[rows]]
        if rows.size == 0:
            return
        order = sweep_orders(seeds[rows], sweep, n)
        changed = np.zeros(rows.size, dtype=np.int64)
        for q in range(n):
            i = order[:, q]
            x = xt[rows, i]
            s = states[rows, i]
            h = (x * overlaps[rows]).sum(1) - p * s
            new = np.where(h > 0, 1.0, np.where(h < 0, -1.0, s)).astype(states.dtype)
            hit = new != s
            if hit.any():
                states[rows[hit], i[hit]] = new[hit]
                overlaps[rows[hit]] += (2.0 * new[hit])[:, None] * x[hit]
                changed += hit
        flips[rows] += changed
        converged[rows[changed == 0]] = True
        sweeps[rows[changed > 0]] += 1


_HEBBIAN_ASYNC = dict(
    description="asynchronous recall of Hebbian couplings J = X^T X from the patterns (O(P) per unit), J never formed",
    twin="hopfield.recall.async on the couplings of storage.outer_product (equal exactly: integer fields)",
    replaces=HEBBIAN,
)


def _hebbian_async(kernel, patterns, cues, seeds, max_sweeps: int) -> AsyncRecall:
    """``patterns`` (trials, P, N), ``cues`` (trials, N); the energy -1/2 s^T J s = -1/2 (|m|^2 - P N)
    comes from the overlaps m = X s the recall keeps."""
    trials, count, n = patterns.shape
    xt = np.ascontiguousarray(np.asarray(patterns).transpose(0, 2, 1), dtype=np.float32)
    states = np.array(cues, dtype=np.float32)
    overlaps = np.matmul(xt.transpose(0, 2, 1), states[:, :, None])[:, :, 0]
    sweeps = np.zeros(trials, dtype=np.int64)
    flips = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    kernel(xt, states, overlaps, seeds, np.arange(trials), max_sweeps, sweeps, flips, converged)
    energy = -0.5 * ((overlaps.astype(np.float64) ** 2).sum(1) - count * n)
    return AsyncRecall(states, sweeps, converged, flips, energy, [])


@register_fast_path("hopfield.recall.hebbian_async", "numba", **_HEBBIAN_ASYNC)
def _hebbian_async_numba(patterns, cues, seeds, max_sweeps: int) -> AsyncRecall:
    return _hebbian_async(_hebbian_async_kernel, patterns, cues, seeds, max_sweeps)


@register_fast_path("hopfield.recall.hebbian_async", "numpy", **_HEBBIAN_ASYNC)
def _hebbian_async_numpy(patterns, cues, seeds, max_sweeps: int) -> AsyncRecall:
    return _hebbian_async(_hebbian_async_array, patterns, cues, seeds, max_sweeps)


# ----------------------------------------------------------------------------- dense associative memories


def dense_gain(n_units: int, power: int) -> float:
    """The positive factor polynomial separations are evaluated with: 1 while N^n < 2^50 (integer
    fields, exact in float64 whatever the summation order), else 1 / N (a positive rescaling that
    leaves every sign unchanged)."""
    return 1.0 if power * math.log2(n_units + 1) < 50 else 1.0 / n_units


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


@nb.njit(parallel=True, cache=True, nogil=True)
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
        arg = m - column * s[:, None]
        if exponential:
            top = m.max(1, keepdims=True) if xp is np else m.max(1, keepdim=True).values
            h = (column * xp.exp(arg - top)).sum(1)
        else:
            h = (column * (((arg + 1.0) * scale) ** power - ((arg - 1.0) * scale) ** power)).sum(1)
        new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, s))
        changed = new != s
        if bool(changed.any()):
            r, v = rows[changed], new[changed]
            states[r, i[changed]] = v
            overlaps[r] += (2.0 * v)[:, None] * column[changed]
            flips[changed] += 1


_DENSE_ASYNC = dict(
    description="asynchronous recall of a dense associative memory from its patterns (1 or trials, P, N), "
    "overlaps kept in O(P) per flip",
    twin="tests/reference.py dense_async (energy differences per unit), with the same unit orders",
)


def _dense_driver(sweep_once, states, seeds, max_sweeps, record, host) -> AsyncRecall:
    trials = states.shape[0]
    sweeps = np.zeros(trials, dtype=np.int64)
    flips_total = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    frames = [host(states).astype(np.int8)] if record else []
    for sweep in range(max_sweeps):
        rows = np.flatnonzero(~converged)
        if rows.size == 0:
            break
        flips = sweep_once(sweep, rows)
        flips_total[rows] += flips
        sweeps[rows[flips > 0]] += 1
        converged[rows[flips == 0]] = True
        if record:
            frames.append(host(states).astype(np.int8))
    return AsyncRecall(states, sweeps, converged, flips_total, None, frames)


@register_fast_path("dense.recall.async", "numba", **_DENSE_ASYNC)
def _dense_async_numba(patterns, states, seeds, max_sweeps, record, *, exponential, power, scale) -> AsyncRecall:
    xt = np.ascontiguousarray(np.asarray(patterns, dtype=np.float64).transpose(0, 2, 1))
    overlaps = np.einsum("cpn,tn->tp", patterns, states) if patterns.shape[0] == 1 else np.einsum("tpn,tn->tp", patterns, states)

    def sweep_once(sweep, rows):
        flips = np.zeros(rows.size, dtype=np.int64)
        _dense_async_kernel(xt, states, overlaps, seeds, sweep, rows, flips, exponential, power, scale)
        return flips

    return _dense_driver(sweep_once, states, seeds, max_sweeps, record, np.asarray)


def _dense_async_xp(xp, patterns, states, seeds, max_sweeps, record, exponential, power, scale, host, index):
    xt = patterns.transpose(1, 2) if xp is not np else np.ascontiguousarray(patterns.transpose(0, 2, 1))
    overlaps = states @ patterns[0].T if patterns.shape[0] == 1 else xp.matmul(states[:, None, :], xt)[:, 0]
    n = states.shape[1]

    def sweep_once(sweep, rows):
        order = sweep_orders(seeds[rows], sweep, n)
        flips = xp.zeros(rows.size, dtype=xp.int64) if xp is np else xp.zeros(rows.size, dtype=xp.int64, device=states.device)
        _dense_async_array(xp, xt, states, overlaps, index(order), index(rows), flips, exponential, power, scale)
        return host(flips)

    return _dense_driver(sweep_once, states, seeds, max_sweeps, record, host)


@register_fast_path("dense.recall.async", "numpy", **_DENSE_ASYNC)
def _dense_async_numpy(patterns, states, seeds, max_sweeps, record, *, exponential, power, scale) -> AsyncRecall:
    return _dense_async_xp(np, patterns, states, seeds, max_sweeps, record, exponential, power, scale, np.asarray, np.asarray)


@register_fast_path("dense.recall.async", "torch", **_DENSE_ASYNC)
def _dense_async_torch(patterns, states, seeds, max_sweeps, record, *, exponential, power, scale) -> AsyncRecall:
    import torch

    device = states.device
    return _dense_async_xp(torch, patterns, states, seeds, max_sweeps, record, exponential, power, scale,
                           lambda a: a.cpu().numpy(), lambda a: torch.as_tensor(a, device=device))

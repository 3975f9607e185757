"""Classical Hopfield networks of +-1 units and the ``hopfield.capacity`` protocol.

Storage rules (all with zero self-coupling, weights symmetric):

* ``hebbian``: W = X^T X / N (Hopfield 1982, PNAS 79:2554);
* ``storkey``: the incremental rule of Storkey (1997, ICANN, LNCS 1327:451) with
  local fields h_ij = sum_{k != i, j} w_ik xi_k;
* ``pseudoinverse``: the projection rule W = X^+ X (Personnaz, Guyon and
  Dreyfus 1985; Kanter and Sompolinsky 1987), which keeps every stored
  pattern a fixed point up to load 1 (with the diagonal removed, up to ~0.5).

Dynamics: asynchronous updates visit units in a fresh random order every sweep
and keep the local fields up to date incrementally (O(N) per flip, never a
matrix-vector product per unit); synchronous updates take one matrix product
per step for a whole batch of cues and detect 2-cycles. A field of exactly zero
keeps the unit's state, so the energy E = -1/2 s^T W s never increases under
asynchronous updates. Runs stop per trial when a sweep (step) changes nothing.

Backends: numba (parallel kernels over trials), numpy (vectorised over trials,
the reference path) and torch (tensor ops on any device). Random unit orders are
hash-driven shuffles of a per-trial seed, so every backend visits units in the
same order. numba and numpy give identical states; torch too for Hebbian storage
(integer couplings, exact in any summation order) and otherwise up to fields that
round to the other side of zero. In ``hopfield.capacity`` Hebbian asynchronous
recall runs from the patterns (N (W s)_i = xi_i . m - P s_i with overlaps m = X s,
O(P) per unit check and per flip) when P < N/2, which makes exactly the same
decisions as the couplings without the O(P N^2) cost of forming W per trial.

The capacity oracle: Amit, Gutfreund and Sompolinsky (1985, PRL 55:1530) give
the critical load 0.138 for Hebbian storage in the large-N limit.
"""

from __future__ import annotations

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
from plasticity.protocols import protocol

__all__ = [
    "RULES",
    "UPDATES",
    "HopfieldNetwork",
    "Retrieval",
    "store_weights",
    "capacity",
]

RULES = ("hebbian", "storkey", "pseudoinverse")
UPDATES = ("async", "sync")

#: Bytes of coupling matrices the capacity protocol keeps in memory at once.
_CHUNK_BYTES = 256 * 2**20


# ----------------------------------------------------------------------------- storage


@nb.njit(parallel=True, cache=True)
def _storkey_kernel(patterns, weights):  # pragma: no cover - compiled
    """Storkey's rule for a stack of pattern sets, in place on ``weights`` (trials, N, N), float64."""
    trials, count, n = patterns.shape
    for t in nb.prange(trials):
        w = weights[t]
        h = np.empty(n)
        for mu in range(count):
            xi = patterns[t, mu]
            for i in range(n):
                acc = 0.0
                for k in range(n):
                    acc += w[i, k] * xi[k]
                h[i] = acc
            for i in range(n):
                for j in range(i + 1, n):
                    # h_ij = h_i - w_ij xi_j and h_ji = h_j - w_ij xi_i (w_ii = 0, w symmetric)
                    hij = h[i] - w[i, j] * xi[j]
                    hji = h[j] - w[i, j] * xi[i]
                    value = w[i, j] + (xi[i] * xi[j] - xi[i] * hji - hij * xi[j]) / n
                    w[i, j] = value
                    w[j, i] = value


def _storkey_numpy(patterns: np.ndarray) -> np.ndarray:
    trials, count, n = patterns.shape
    weights = np.zeros((trials, n, n))
    for t in range(trials):
        w = weights[t]
        for xi in patterns[t]:
            h = w @ xi
            hij = h[:, None] - w * xi[None, :]
            hji = h[None, :] - w * xi[:, None]
            w += (np.outer(xi, xi) - xi[:, None] * hji - hij * xi[None, :]) / n
            np.fill_diagonal(w, 0.0)
    return weights


def _couplings(patterns: np.ndarray, rule: str, backend: str, dtype: np.dtype, device=None):
    """Couplings J (trials, N, N) and the positive scale with W = scale * J for a stack of pattern sets.

    Hebbian couplings are kept as the integers X^T X, exact in float32 whatever the
    summation order, so every backend sees the same ties; W = J / N.
    """
    trials, count, n = patterns.shape
    if backend == "torch":
        import torch

        x = torch.as_tensor(patterns, dtype=torch.float64, device=device)
        if rule == "hebbian":
            j = torch.matmul(x.transpose(1, 2), x)
            scale = 1.0 / n
        elif rule == "pseudoinverse":
            j = torch.matmul(torch.linalg.pinv(x), x)
            scale = 1.0
        else:
            j = torch.as_tensor(_storkey_numpy(patterns), device=device)
            scale = 1.0
        j.diagonal(dim1=1, dim2=2).zero_()
        return j.to(getattr(torch, dtype.name)), scale
    if rule == "hebbian":
        # one float32 product per trial (BLAS on all cores); integer-valued, hence exact
        x = patterns.astype(np.float32)
        j = np.empty((trials, n, n), dtype=np.float32)
        for t in range(trials):
            np.matmul(x[t].T, x[t], out=j[t])
        scale = 1.0 / n
    elif rule == "pseudoinverse":
        x = patterns.astype(np.float64)
        j = np.matmul(np.linalg.pinv(x), x)
        scale = 1.0
    elif backend == "numba":
        j = np.zeros((trials, n, n))
        _storkey_kernel(np.ascontiguousarray(patterns, dtype=np.float64), j)
        scale = 1.0
    else:
        j = _storkey_numpy(patterns)
        scale = 1.0
    for t in range(trials):
        np.fill_diagonal(j[t], 0.0)
    return np.ascontiguousarray(j, dtype=dtype), scale


def store_weights(patterns, rule: str = "hebbian", *, backend: str = "numba") -> np.ndarray:
    """The (N, N) float64 weight matrix that stores the +-1 ``patterns`` (rows) with ``rule``."""
    check_choice("rule", rule, RULES)
    resolve_backend(backend)
    x = check_binary(patterns)
    j, scale = _couplings(x[None], rule, "numpy" if backend == "torch" else backend, np.dtype(np.float64))
    return j[0] * scale


# ----------------------------------------------------------------------------- dynamics kernels


@nb.njit(parallel=True, cache=True)
def _async_run_kernel(couplings, states, fields, seeds, rows, first, count, sweeps, flips, converged):  # pragma: no cover
    """Up to ``count`` asynchronous sweeps (numbered from ``first``) for each trial in ``rows``.

    Each trial runs to convergence on its own thread: units in the order of
    ``order_into(seeds[t], sweep)``; a flip of unit i adds 2 s_i J[i, :] to the
    trial's fields (O(N) per flip); a sweep with no flip marks the trial converged.
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


@nb.njit(parallel=True, cache=True, fastmath=True)
def _hebbian_async_kernel(xt, states, overlaps, seeds, rows, count, sweeps, flips, converged):  # pragma: no cover
    """Asynchronous Hebbian recall from the patterns themselves, without forming W.

    ``xt`` is (trials, N, P), ``overlaps`` m = X s (trials, P), both float32. The field
    N (W s)_i = xi_i . m - P s_i is an integer below 2^24, exact in float32 in any
    summation order (hence fastmath), so every decision equals the one from the
    couplings J = X^T X; a flip costs O(P), a unit check O(P). Sweep orders as in
    ``_async_run_kernel``.
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


def _hebbian_async_numpy(xt, states, overlaps, seeds, rows, count, sweeps, flips, converged):
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


def _hebbian_recall(patterns, cues, rngs, *, max_sweeps, backend) -> Retrieval:
    """Asynchronous recall of Hebbian networks from their patterns (trials, P, N); W is never formed."""
    trials, count, n = patterns.shape
    xt = np.ascontiguousarray(patterns.transpose(0, 2, 1), dtype=np.float32)
    states = np.array(cues, dtype=np.float32)
    overlaps = np.matmul(xt.transpose(0, 2, 1), states[:, :, None])[:, :, 0]
    sweeps = np.zeros(trials, dtype=np.int64)
    flips = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    seeds = order_seeds(rngs)
    rows = np.arange(trials)
    run = _hebbian_async_kernel if backend == "numba" else _hebbian_async_numpy
    run(xt, states, overlaps, seeds, rows, max_sweeps, sweeps, flips, converged)
    energy = -0.5 * ((overlaps.astype(np.float64) ** 2).sum(1) - count * n) / n
    return Retrieval(states.astype(np.float64), sweeps, converged, np.zeros(trials, dtype=bool), energy, flips)


@nb.njit(parallel=True, cache=True)
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


@nb.njit(cache=True)
def _sync_update_kernel(fields, states, previous, rows, flips, cycled):  # pragma: no cover - compiled
    """Fused synchronous update of the trials in ``rows`` from their fields; counts flips, flags 2-cycles.

    One pass over the batch on one thread: it is a few percent of the matrix product before it,
    and a parallel region here would leave numba's threads spinning against BLAS's.
    """
    n = states.shape[1]
    for k in range(rows.shape[0]):
        t = rows[k]
        count = 0
        back = True
        for i in range(n):
            s = states[t, i]
            h = fields[k, i]
            new = s
            if h > 0.0:
                new = 1.0
            elif h < 0.0:
                new = -1.0
            if new != s:
                count += 1
            if new != previous[t, i]:
                back = False
            previous[t, i] = s
            states[t, i] = new
        flips[k] = count
        cycled[k] = count > 0 and back


def _sync_update_array(xp, fields, states, previous, rows):
    """Vectorised twin of ``_sync_update_kernel`` for numpy and torch; ``previous`` starts equal to ``states``."""
    s = states[rows]
    new = xp.where(fields > 0, 1.0, xp.where(fields < 0, -1.0, s))
    new = new.to(s.dtype) if xp.__name__ == "torch" else new.astype(s.dtype)
    flips = (new != s).sum(1)
    cycled = (flips > 0) & (new == previous[rows]).all(1)
    previous[rows] = s
    states[rows] = new
    return flips, cycled


@dataclass
class Retrieval:
    """Result of a recall: final ``states`` (trials, N), per-trial ``sweeps`` (steps that changed the
    state), ``converged`` (a sweep changed nothing), ``cycle`` (a synchronous 2-cycle), the
    ``energy`` of the final states, ``flips`` (unit changes in all) and, when recorded, the
    ``trajectory`` (sweep, trial, N)."""

    states: np.ndarray
    sweeps: np.ndarray
    converged: np.ndarray
    cycle: np.ndarray
    energy: np.ndarray
    flips: np.ndarray
    trajectory: np.ndarray | None = None


def _recall(couplings, scale, cues, rngs, *, update, max_sweeps, backend, device=None, record=False) -> Retrieval:
    """Run async or sync dynamics from ``cues`` (trials, N) with couplings (1 or trials, N, N)."""
    trials, n = cues.shape
    sweeps = np.zeros(trials, dtype=np.int64)
    total_flips = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    cycle = np.zeros(trials, dtype=bool)
    active = np.ones(trials, dtype=bool)
    shared = couplings.shape[0] == 1
    frames = []
    if backend == "torch":
        import torch

        xp = torch
        dev = couplings.device
        states = torch.as_tensor(cues, dtype=couplings.dtype, device=dev).clone()

        def host(a):
            return a.cpu().numpy()

        def index(a):
            return torch.as_tensor(a, device=dev)

        def fields_of(rows):
            s = states if rows.numel() == trials else states[rows]
            if shared:
                return s @ couplings[0]
            c = couplings if rows.numel() == trials else couplings[rows]
            return torch.bmm(s[:, None, :], c)[:, 0]
    else:
        xp = np
        states = np.array(cues, dtype=couplings.dtype, copy=True)

        def host(a):
            return a

        def index(a):
            return a

        def fields_of(rows):
            if shared:
                return (states if rows.size == trials else states[rows]) @ couplings[0]
            if backend == "numba":
                out = np.empty((rows.size, n))
                _trial_fields_kernel(couplings, states, rows, out)
                return out
            return _trial_fields_numpy(couplings, states, rows)

    if record:
        frames.append(host(states).astype(np.int8))
    if update == "async":
        all_rows = np.arange(trials)
        if backend == "torch":
            fields = fields_of(index(all_rows)).double()
        elif backend == "numba":
            fields = np.empty((trials, n))
            _trial_fields_kernel(couplings, states, all_rows, fields)
        else:
            fields = _trial_fields_numpy(couplings, states, all_rows)
        seeds = order_seeds(rngs)
        runs = [(w, 1) for w in range(max_sweeps)] if record else [(0, max_sweeps)]
        for first, count in runs:
            rows = np.flatnonzero(~converged)
            if rows.size == 0:
                break
            if backend == "numba":
                _async_run_kernel(couplings, states, fields, seeds, rows, first, count, sweeps, total_flips, converged)
            else:
                _async_run_array(xp, couplings, states, fields, seeds, rows, first, count, sweeps, total_flips, converged)
            if record:
                frames.append(host(states).astype(np.int8))
        final = fields
    else:
        previous = states.clone() if backend == "torch" else states.copy()
        for _ in range(max_sweeps):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            f = fields_of(index(rows))
            if backend == "numba":
                flips = np.zeros(rows.size, dtype=np.int64)
                cycled = np.zeros(rows.size, dtype=bool)
                _sync_update_kernel(f, states, previous, rows, flips, cycled)
            else:
                flips, cycled = _sync_update_array(xp, f, states, previous, index(rows))
                flips, cycled = host(flips), host(cycled)
            changed = flips > 0
            total_flips[rows] += flips
            sweeps[rows[changed]] += 1
            converged[rows[~changed]] = True
            cycle[rows[cycled]] = True
            active[rows[~changed | cycled]] = False
            if record:
                frames.append(host(states).astype(np.int8))
        final = fields_of(index(np.arange(trials)))
    s64 = host(states).astype(np.float64)
    final = host(final).astype(np.float64)
    energy = -0.5 * scale * np.einsum("ti,ti->t", s64, final)
    trajectory = np.stack(frames) if record else None
    return Retrieval(s64, sweeps, converged, cycle, energy, total_flips, trajectory)


# ----------------------------------------------------------------------------- public model


class HopfieldNetwork(BinaryMemory):
    """A classical Hopfield network storing +-1 ``patterns`` (rows) with ``rule``.

    ``weights`` is the (N, N) float64 matrix of the rule (zero diagonal); ``patterns``
    the stored patterns as a plain float array. ``retrieve`` runs asynchronous or
    synchronous dynamics from a batch of cues on the numba, numpy or torch backend.

    Example::

        net = HopfieldNetwork(np.sign(np.random.default_rng(0).standard_normal((50, 500))))
        result = net.retrieve(net.patterns[:5], update="async", seed=1)
        net.overlaps(result.states)  # (5, 50)
    """

    def __init__(self, patterns, rule: str = "hebbian", *, dtype: str = "float32", backend: str = "numba"):
        self.rule = check_choice("rule", rule, RULES)
        self.dtype = check_dtype(dtype)
        resolve_backend(backend)
        x = check_binary(patterns)
        self._patterns = x
        couplings, self._scale = _couplings(x[None], rule, "numpy" if backend == "torch" else backend, np.dtype(np.float64))
        self._couplings64 = couplings
        self.weights = couplings[0] * self._scale

    def energy(self, states) -> np.ndarray:
        """E = -1/2 s^T W s for each state (row) of ``states``; float64, shape (batch,)."""
        s = self._states(states)
        return -0.5 * np.einsum("ti,ij,tj->t", s, self.weights, s)

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
    ) -> Retrieval:
        """Run the dynamics from each cue (row) until no unit changes or ``max_sweeps`` sweeps/steps.

        ``seed`` fixes the random unit order of asynchronous sweeps (one generator per cue).
        With ``record=True`` the state after every sweep is kept in ``trajectory``.
        """
        check_choice("update", update, UPDATES)
        max_sweeps = check_int("max_sweeps", max_sweeps)
        dev = resolve_backend(backend, device)
        s = self._states(cues)
        couplings = self._couplings64.astype(self.dtype)
        if backend == "torch":
            import torch

            couplings = torch.as_tensor(couplings, device=dev)
        rngs = trial_generators(seed, s.shape[0])
        return _recall(couplings, self._scale, s, rngs, update=update, max_sweeps=max_sweeps, backend=backend, record=record)


# ----------------------------------------------------------------------------- protocol


def _chunk_size(bytes_per_trial: int, trials: int) -> int:
    return int(max(1, min(trials, _CHUNK_BYTES // max(1, bytes_per_trial))))


def _random_patterns(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """(n, count) unbiased random +-1 values (float32) from packed random bytes: ``count`` patterns as columns."""
    bits = np.unpackbits(rng.integers(0, 256, size=(count * n + 7) // 8, dtype=np.uint8))[: count * n]
    return bits.reshape(n, count).astype(np.float32) * np.float32(2.0) - np.float32(1.0)


@protocol("hopfield.capacity")
def capacity(
    *,
    n: int = 1000,
    rule: str = "hebbian",
    load: float = 0.1,
    patterns: int = 0,
    flip: float = 0.0,
    update: str = "async",
    max_sweeps: int = 100,
    trials: int = 50,
    threshold: float = 0.95,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Retrieval of a stored pattern from a corrupted cue in a classical Hopfield network.

    Each trial stores its own ``round(load * n)`` random unbiased +-1 patterns (or
    ``patterns`` when > 0) with ``rule``, cues the network with the first pattern with
    a fraction ``flip`` of its units flipped, runs ``update`` dynamics for at most
    ``max_sweeps`` sweeps and records the final ``overlap`` with the pattern, ``success``
    (overlap >= ``threshold``), ``sweeps`` that changed the state, ``converged``,
    ``cycle`` (synchronous 2-cycle) and the final ``energy``. Trials run in batches;
    the numba backend spreads them over the cores.
    """
    n = check_int("n", n, minimum=2)
    check_choice("rule", rule, RULES)
    check_choice("update", update, UPDATES)
    flip = check_fraction("flip", flip)
    max_sweeps = check_int("max_sweeps", max_sweeps)
    trials = check_int("trials", trials)
    threshold = check_fraction("threshold", threshold)
    np_dtype = check_dtype(dtype)
    dev = resolve_backend(backend, device)
    count = count_patterns(n, load, patterns)
    rngs = trial_generators(seed, trials)

    overlap = np.empty(trials)
    sweeps = np.empty(trials, dtype=np.int64)
    converged = np.empty(trials, dtype=bool)
    cycle = np.empty(trials, dtype=bool)
    energy = np.empty(trials)
    # Hebbian asynchronous recall runs from the patterns (O(P) per unit check and flip) when that
    # is cheaper than forming each trial's W (O(P N^2)); both give the same decisions exactly.
    from_patterns = rule == "hebbian" and update == "async" and backend != "torch" and count < n // 2 and count * n < 2**24
    chunk = _chunk_size(n * (count if from_patterns else n) * np_dtype.itemsize, trials)
    for start in range(0, trials, chunk):
        stop = min(trials, start + chunk)
        xt = np.empty((stop - start, n, count), dtype=np.float32)
        xs = xt.transpose(0, 2, 1)  # (trials, patterns, units), a view
        cues = np.empty((stop - start, n))
        for k, t in enumerate(range(start, stop)):
            xt[k] = _random_patterns(rngs[t], n, count)
            cues[k] = flip_bits(xs[k, 0], flip, rngs[t])
        if from_patterns:
            result = _hebbian_recall(xs, cues, rngs[start:stop], max_sweeps=max_sweeps, backend=backend)
        else:
            couplings, scale = _couplings(xs, rule, backend, np_dtype, dev)
            result = _recall(
                couplings, scale, cues, rngs[start:stop], update=update, max_sweeps=max_sweeps, backend=backend
            )
        overlap[start:stop] = np.einsum("ti,ti->t", result.states, xs[:, 0]) / n
        sweeps[start:stop] = result.sweeps
        converged[start:stop] = result.converged
        cycle[start:stop] = result.cycle
        energy[start:stop] = result.energy
    dims = ("trial",)
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "final overlap with the cued pattern"}),
            "success": (dims, overlap >= threshold, {"long_name": f"overlap >= {threshold}"}),
            "sweeps": (dims, sweeps, {"long_name": "sweeps (steps) that changed the state"}),
            "converged": (dims, converged, {"long_name": "a sweep changed no unit"}),
            "cycle": (dims, cycle, {"long_name": "synchronous 2-cycle"}),
            "energy": (dims, energy, {"long_name": "energy -1/2 s^T W s of the final state"}),
            "num_patterns": ((), count, {"long_name": "stored patterns"}),
            "alpha": ((), count / n, {"long_name": "load (stored patterns / units)"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "classical Hopfield network", "rule": rule, "update": update},
    )

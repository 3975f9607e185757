"""Slow, obviously correct numpy versions of every fast path; the tests compare against them.

Each topic appends its own section headed by a comment.
"""

# ============================================================================
# Associative memories (issue 5): classical, dense, modern and universal Hopfield
# networks. Loops over units and patterns, no tricks.
# ============================================================================

import math as _am_math

import numpy as _am_np


def hopfield_hebbian_weights(patterns):
    """w_ij = (1/N) sum_mu xi_i xi_j for i != j, w_ii = 0."""
    x = _am_np.asarray(patterns, dtype=float)
    p, n = x.shape
    w = _am_np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                w[i, j] = sum(x[mu, i] * x[mu, j] for mu in range(p)) / n
    return w


def hopfield_storkey_weights(patterns):
    """Storkey (1997): w_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N, h_ij = sum_{k != i, j} w_ik xi_k."""
    x = _am_np.asarray(patterns, dtype=float)
    p, n = x.shape
    w = _am_np.zeros((n, n))
    for mu in range(p):
        xi = x[mu]
        h = _am_np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                h[i, j] = sum(w[i, k] * xi[k] for k in range(n) if k != i and k != j)
        new = w.copy()
        for i in range(n):
            for j in range(n):
                if i != j:
                    new[i, j] = w[i, j] + (xi[i] * xi[j] - xi[i] * h[j, i] - h[i, j] * xi[j]) / n
        w = new
    return w


def hopfield_pseudoinverse_weights(patterns):
    """W = X^T (X X^T)^-1 X with the diagonal set to zero (patterns linearly independent)."""
    x = _am_np.asarray(patterns, dtype=float)
    w = x.T @ _am_np.linalg.inv(x @ x.T) @ x
    _am_np.fill_diagonal(w, 0.0)
    return w


def _am_sign_keep(h, s, tie=1e-9):
    """sign(h), keeping s when h is zero (|h| <= tie absorbs float rounding of an exact zero field)."""
    return 1.0 if h > tie else (-1.0 if h < -tie else s)


def hopfield_async(weights, cue, rng, max_sweeps):
    """Asynchronous updates, a full dot product per unit; order rng.permutation(N) each sweep.

    Returns (state, sweeps that changed the state, converged).
    """
    s = _am_np.array(cue, dtype=float)
    n = s.size
    sweeps = 0
    for _ in range(max_sweeps):
        flips = 0
        for i in rng.permutation(n):
            new = _am_sign_keep(float(weights[i] @ s), s[i])
            if new != s[i]:
                s[i] = new
                flips += 1
        if flips == 0:
            return s, sweeps, True
        sweeps += 1
    return s, sweeps, False


def hopfield_sync(weights, cue, max_steps):
    """Synchronous updates; returns (state, steps that changed it, converged, 2-cycle)."""
    s = _am_np.array(cue, dtype=float)
    previous = s.copy()
    steps = 0
    for _ in range(max_steps):
        h = weights @ s
        new = _am_np.array([_am_sign_keep(h[i], s[i]) for i in range(s.size)])
        if _am_np.array_equal(new, s):
            return s, steps, True, False
        steps += 1
        if _am_np.array_equal(new, previous):
            return new, steps, False, True
        previous, s = s, new
    return s, steps, False, False


def dense_energy(patterns, state, power=None):
    """Krotov-Hopfield energy -sum_mu F(xi_mu . s), F(x) = x^power, or exp(x) when power is None."""
    total = 0.0
    for xi in _am_np.asarray(patterns, dtype=float):
        x = float(xi @ state)
        total += _am_math.exp(x) if power is None else x**power
    return -total


def dense_async(patterns, cue, rng, max_sweeps, power=None):
    """Asynchronous dense updates: s_i takes the sign of E(s_i = -1) - E(s_i = +1); ties keep."""
    s = _am_np.array(cue, dtype=float)
    n = s.size
    sweeps = 0
    for _ in range(max_sweeps):
        flips = 0
        for i in rng.permutation(n):
            plus, minus = s.copy(), s.copy()
            plus[i], minus[i] = 1.0, -1.0
            new = _am_sign_keep(dense_energy(patterns, minus, power) - dense_energy(patterns, plus, power), s[i])
            if new != s[i]:
                s[i] = new
                flips += 1
        if flips == 0:
            return s, sweeps, True
        sweeps += 1
    return s, sweeps, False


def dense_sync_step(patterns, state, power=None):
    """One synchronous dense step from ``state`` (every unit from the same old state)."""
    s = _am_np.array(state, dtype=float)
    out = s.copy()
    for i in range(s.size):
        plus, minus = s.copy(), s.copy()
        plus[i], minus[i] = 1.0, -1.0
        out[i] = _am_sign_keep(dense_energy(patterns, minus, power) - dense_energy(patterns, plus, power), s[i])
    return out


def modern_update(patterns, state, beta, steps=1):
    """xi <- sum_mu softmax(beta x_mu . xi)_mu x_mu, ``steps`` times."""
    x = _am_np.asarray(patterns, dtype=float)
    xi = _am_np.array(state, dtype=float)
    for _ in range(steps):
        scores = [beta * float(row @ xi) for row in x]
        top = max(scores)
        e = [_am_math.exp(v - top) for v in scores]
        z = sum(e)
        xi = sum((e[mu] / z) * x[mu] for mu in range(len(x)))
    return xi


def uhn_similarity(query, memory, similarity):
    """Per-unit similarity of one query with each memory row: dot/D, -RMS distance, -mean |difference|."""
    d = len(query)
    out = []
    for m in _am_np.asarray(memory, dtype=float):
        if similarity == "dot":
            out.append(sum(query[i] * m[i] for i in range(d)) / d)
        elif similarity == "euclidean":
            out.append(-_am_math.sqrt(sum((query[i] - m[i]) ** 2 for i in range(d)) / d))
        else:
            out.append(-sum(abs(query[i] - m[i]) for i in range(d)) / d)
    return _am_np.array(out)


def uhn_separation(scores, separation, beta, power):
    """Weights summing to one: softmax(beta s), one-hot max, (s - min)/sum, (s - min)^power/sum."""
    s = _am_np.asarray(scores, dtype=float)
    if separation == "softmax":
        e = _am_np.array([_am_math.exp(beta * (v - s.max())) for v in s])
        return e / e.sum()
    if separation == "max":
        w = _am_np.zeros_like(s)
        w[int(_am_np.argmax(s))] = 1.0
        return w
    w = s - s.min()
    if separation == "polynomial":
        w = w**power
    return w / w.sum() if w.sum() > 0 else _am_np.full_like(s, 1.0 / s.size)


def uhn_retrieve(memory, projection, query, similarity, separation, beta, power):
    """P^T sep(sim(M, q)) for one query."""
    w = uhn_separation(uhn_similarity(query, memory, similarity), separation, beta, power)
    return sum(w[mu] * _am_np.asarray(projection, dtype=float)[mu] for mu in range(len(w)))

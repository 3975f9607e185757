"""Attention as associative memory: sequence memories written token by token by local rules.

A sequence memory layer keeps a fast-weight state S (d_v x d_k), written at token t by a local
rule over the token's key k_t (presynaptic), value v_t (postsynaptic target) and the current
read-out of the key, S k_t (the postsynaptic summed input ``I``), and read as o_t = S_t q_t
after the write. The family (Wang, Shi and Fox 2025, "Test-time regression"; Yang et al. 2024)
is one recurrence

    S_t = a_t S_{t-1} + b_t (v_t - d a_t S_{t-1} k_t) k_t^T,

with a gate a_t in [0, 1], a write strength b_t >= 0 and d = 1 for the delta rule:

* ``linear``: linear attention (Katharopoulos et al. 2020), a = b = 1, d = 0: the Hebbian
  outer-product sum S = V^T K;
* ``decayed``: a fixed decay a = ``gamma`` (RetNet, Sun et al. 2023);
* ``gated``: an input-dependent gate a_t (gated linear attention, Yang et al. 2024; the scalar
  state-space recurrence of Mamba-2, Dao and Gu 2024);
* ``delta``: DeltaNet (Schlag, Irie and Schmidhuber 2021; Yang et al. 2024), a = 1, d = 1, one
  online gradient step of size b_t on 1/2 ||v_t - S k_t||^2;
* ``gated_delta``: gated DeltaNet (Yang, Kautz and Hatamizadeh 2025), both;
* ``softmax``: softmax attention, the non-parametric memory: every key and value kept and read
  through softmax separation, o_t = V_{<=t}^T softmax(beta K_{<=t} q_t), one retrieval of the
  universal Hopfield network (:mod:`plasticity.networks.uhn`; Millidge et al. 2022) with
  dot-product similarity, i.e. one modern Hopfield update (Ramsauer et al. 2020).

Each fast-weight memory is a :class:`~plasticity.rule.Rule` in the project's equation language
(:data:`RULES`), and any other rule, strict 3Q rules included, may take its place. Three forms:

* :func:`recurrent`: token by token on the engine (numba, numpy or torch): populations ``keys``
  (d_k units, ``x`` = the key while writing, the query while reading) and ``values`` (d_v units;
  inputs ``v`` value, ``a`` gate, ``b`` write strength; summed input ``I`` = S x), the
  projection ``memory`` (keys -> values, weights S) carrying the rule. Each token is a write step
  (drive and plasticity) and a read step (drive only), so any rule runs;
* :func:`scan`: the same recurrence for the built-in family as the registered fast path
  ``attention.scan`` (a numba kernel; a plain loop on numpy and torch), twin :func:`recurrent`;
* :func:`chunked`: the parallel form over a whole sequence on torch, causal and
  differentiable, in chunks: within a chunk the delta rule's written residuals U solve one
  triangular system (I + diag(b) (D o tril(K K^T, -1))) U = diag(b) (V - diag(G) K S_0^T),
  G the cumulative gates and D their ratios, the WY form of Yang et al. (2024); the
  non-delta memories need no solve. ``chunk = T`` is the fully parallel (quadratic) form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from plasticity.backends.runtime import Runtime, register_fast_path, resolve
from plasticity.errors import ConfigError
from plasticity.network import Network
from plasticity.params import Choice, Int, Real, check
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = [
    "MEMORIES", "FAST_WEIGHT", "RULES", "Family", "FAMILY", "sequence_network", "check_sequence", "recurrent", "scan",
    "chunked", "softmax_attention", "softmax_recurrent",
]

_OFFERED = "x_pre (the key), v_post (the value), I_post (the read-out S k), a_post (the gate), b_post (the write strength)"

RULES: dict[str, Rule] = {
    "linear": Rule(
        ["w += v_post * x_pre"], name="linear_attention",
        description="Linear attention: the Hebbian outer product S += v k^T",
        reference="Katharopoulos, Vyas, Pappas and Fleuret (2020), ICML, PMLR 119:5156",
    ),
    "decayed": Rule(
        ["w += v_post * x_pre - (1 - gamma) * w"], params={"gamma": 0.95}, name="decayed_linear_attention",
        description="Linear attention with a fixed decay: S = gamma S + v k^T",
        reference="Sun et al. (2023), Retentive network, arXiv:2307.08621",
    ),
    "gated": Rule(
        ["w += v_post * x_pre - (1 - a_post) * w"], name="gated_linear_attention",
        description="Gated linear attention with a scalar input-dependent gate: S = a_t S + v k^T",
        reference="Yang, Wang, Shen, Panda and Kim (2024), ICML; Dao and Gu (2024), ICML (Mamba-2)",
    ),
    "delta": Rule(
        ["w += b_post * (v_post - I_post) * x_pre"], name="deltanet",
        description="DeltaNet: the delta rule S += b (v - S k) k^T, one online gradient step on 1/2 ||v - S k||^2",
        reference="Schlag, Irie and Schmidhuber (2021), ICML; Yang, Wang, Zhang, Shen and Kim (2024), NeurIPS",
    ),
    "gated_delta": Rule(
        ["w += b_post * (v_post - a_post * I_post) * x_pre - (1 - a_post) * w"], name="gated_deltanet",
        description="Gated DeltaNet: S = a_t S (I - b k k^T) + b v k^T",
        reference="Yang, Kautz and Hatamizadeh (2025), ICLR, arXiv:2412.06464",
    ),
}

#: The fast-weight memories, then the non-parametric one.
FAST_WEIGHT = tuple(RULES)
MEMORIES = (*FAST_WEIGHT, "softmax")


@dataclass(frozen=True)
class Family:
    """How a built-in memory sets the recurrence S = a S + b (v - d a S k) k^T: whether it reads the
    gate input a_t (else a = ``gamma`` for ``decayed``, 1 otherwise), the write strength b_t (else
    1), and d."""

    gated: bool
    strength: bool
    delta: bool


FAMILY = {
    "linear": Family(False, False, False),
    "decayed": Family(False, False, False),
    "gated": Family(True, False, False),
    "delta": Family(False, True, True),
    "gated_delta": Family(True, True, True),
}


def effective_gates(memory: str, a: np.ndarray, b: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) a built-in ``memory`` uses, from the inputs ``a``, ``b`` (B, T)."""
    family = FAMILY[memory]
    if not family.gated:
        a = np.full_like(a, gamma if memory == "decayed" else 1.0)
    if not family.strength:
        b = np.ones_like(b)
    return a, b


def check_sequence(q, k, v, a=None, b=None) -> tuple[np.ndarray, ...]:
    """Queries and keys (B, T, d_k), values (B, T, d_v), gates ``a`` in [0, 1] and write strengths
    ``b`` >= 0 (B, T; default ones) as float64 arrays; a ConfigError naming the argument otherwise."""
    arrays = []
    for name, x in (("q", q), ("k", k), ("v", v)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or not np.all(np.isfinite(x)):
            raise ConfigError(f"{name} must be a finite (batch, tokens, dim) array; got shape {x.shape}")
        arrays.append(x)
    q, k, v = arrays
    if q.shape != k.shape:
        raise ConfigError(f"q and k must have the same shape (batch, tokens, d_k); got {q.shape} and {k.shape}")
    if v.shape[:2] != k.shape[:2]:
        raise ConfigError(f"v must have the keys' batch and tokens {k.shape[:2]}; got {v.shape[:2]}")
    out = [q, k, v]
    for name, x, low, high in (("a", a, 0.0, 1.0), ("b", b, 0.0, None)):
        x = np.ones(k.shape[:2]) if x is None else np.asarray(x, dtype=np.float64)
        if x.shape != k.shape[:2] or not np.all(np.isfinite(x)) or np.any(x < low) or (high is not None and np.any(x > high)):
            bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise ConfigError(f"{name} must be a finite (batch, tokens) array {bound}; got shape {x.shape}")
        out.append(x)
    return tuple(out)


# ----------------------------------------------------------------------------- the engine form


def _rule(memory: str | Rule | Any, gamma: float) -> Rule:
    if isinstance(memory, str):
        if memory not in RULES:
            raise ConfigError(f"memory must be one of {', '.join(map(repr, FAST_WEIGHT))} or a rule; got {memory!r}")
        return RULES[memory].with_params(gamma=gamma) if memory == "decayed" else RULES[memory]
    from plasticity.rules import resolve_rule

    return resolve_rule(memory, parameter="memory")


def sequence_network(d_k: int, d_v: int, rule: str | Rule | Any = "linear", *, gamma: float = 0.95) -> Network:
    """Populations ``keys`` and ``values`` and the projection ``memory`` whose weights are the
    fast-weight state S, written by ``rule`` (a name of :data:`RULES`, a rule table or a Rule)."""
    from plasticity.errors import EquationError

    keys = Population(d_k, init={"x": 0.0}, name="keys")
    values = Population(d_v, init={"v": 0.0, "a": 1.0, "b": 1.0}, name="values")
    try:
        memory = Projection(keys, values, _rule(rule, gamma), source="x", init={"w": 0.0}, name="memory")
    except EquationError as error:
        raise EquationError(f"{error.reason}; a sequence memory offers {_OFFERED}", error.equation, error.column) from None
    return Network([keys, values], [memory])


def recurrent(memory: str | Rule | Any, q, k, v, a=None, b=None, *, gamma: float = 0.95, backend: str = "numba",
              dtype: str = "float64", device: str | None = None) -> np.ndarray:
    """Run a fast-weight ``memory`` over sequences token by token on the engine: write token t with
    the rule (drive, then plasticity), then read o_t = S_t q_t (drive only). Returns (B, T, d_v).

    ``a`` and ``b`` (B, T) are fed to the values population as the gate and write strength; a
    built-in memory reads them only where its recurrence has them (see :data:`FAMILY`)."""
    q, k, v, a, b = check_sequence(q, k, v, a, b)
    gamma = check("gamma", gamma, Real(0, 1))
    batch, tokens, d_k = k.shape
    d_v = v.shape[2]
    network = sequence_network(d_k, d_v, memory, gamma=gamma)
    simulation = Simulation(network, trials=batch, backend=backend, dtype=dtype, device=device)
    out = np.empty((batch, tokens, d_v))
    ones = np.ones((1, 1, d_v))
    for t in range(tokens):
        simulation.advance(1, inputs={"keys.x": k[None, :, t], "values.v": v[None, :, t],
                                      "values.a": a[None, :, t, None] * ones, "values.b": b[None, :, t, None] * ones})
        simulation.advance(1, inputs={"keys.x": q[None, :, t]}, stages=("drive",), plastic=False)
        out[:, t] = simulation.get("values.I")
    return out


# ----------------------------------------------------------------------------- the scan fast path


@nb.njit(parallel=True, cache=True)
def _scan_kernel(q, k, v, a, b, delta, out):  # pragma: no cover - compiled
    """S_t = a_t S + b_t (v_t - delta a_t S k_t) k_t^T, o_t = S_t q_t, one sequence per thread; row by
    row of S (a row's update needs only that row)."""
    batch, tokens, d_k = k.shape
    d_v = v.shape[2]
    for n in nb.prange(batch):
        s = np.zeros((d_v, d_k))
        for t in range(tokens):
            gate = a[n, t]
            for i in range(d_v):
                read = 0.0
                if delta:
                    for j in range(d_k):
                        read += s[i, j] * k[n, t, j]
                residual = b[n, t] * (v[n, t, i] - gate * read)
                o = 0.0
                for j in range(d_k):
                    s[i, j] = gate * s[i, j] + residual * k[n, t, j]
                    o += s[i, j] * q[n, t, j]
                out[n, t, i] = o


_SCAN = dict(
    description="the recurrence S = a S + b (v - d a S k) k^T, o = S q of the built-in sequence memories, token by token",
    twin="networks/attention.py recurrent: the memory's rule on the engine, one write and one read step per token",
)


@register_fast_path("attention.scan", "numba", **_SCAN)
def _scan_numba(q, k, v, a, b, delta: bool):
    out = np.empty(v.shape, dtype=np.float64)
    _scan_kernel(*(np.ascontiguousarray(x, dtype=np.float64) for x in (q, k, v, a, b)), bool(delta), out)
    return out.astype(v.dtype)


@register_fast_path("attention.scan", ("numpy", "torch"), **_SCAN)
def _scan_loop(q, k, v, a, b, delta: bool):
    """The plain recurrent loop, one matrix-vector product per token (numpy arrays or torch tensors)."""
    batch, tokens, d_k = k.shape
    if isinstance(v, np.ndarray):
        s, out = np.zeros((batch, v.shape[2], d_k), v.dtype), np.empty_like(v)
    else:
        s, out = v.new_zeros((batch, v.shape[2], d_k)), v.new_empty(v.shape)  # written in place: no per-token allocation kept
    for t in range(tokens):
        kt, gate, strength = k[:, t], a[:, t, None], b[:, t, None]
        written = v[:, t] - gate * (s @ kt[:, :, None])[:, :, 0] if delta else v[:, t]
        s = gate[:, :, None] * s + (strength * written)[:, :, None] * kt[:, None, :]
        out[:, t] = (s @ q[:, t, :, None])[:, :, 0]
    return out


def scan(memory: str, q, k, v, a=None, b=None, *, gamma: float = 0.95, backend: str = "numba", dtype: str = "float64",
         device: str | None = None) -> np.ndarray:
    """The recurrence of a built-in fast-weight ``memory`` by the fast path ``attention.scan`` on
    ``backend``; the same outputs as :func:`recurrent`. Returns (B, T, d_v) float64."""
    if memory not in FAMILY:
        raise ConfigError(f"memory must be one of {', '.join(map(repr, FAST_WEIGHT))}; got {memory!r}")
    q, k, v, a, b = check_sequence(q, k, v, a, b)
    a, b = effective_gates(memory, a, b, check("gamma", gamma, Real(0, 1)))
    runtime = resolve(backend, device, dtype)
    out = runtime.fast_path("attention.scan")(*(runtime.array(x) for x in (q, k, v, a, b)), FAMILY[memory].delta)
    return runtime.host(out).astype(np.float64)


# ----------------------------------------------------------------------------- the chunked form (torch)


def _segsum(log_gates):
    """seg[..., t, s] = sum_{r = s+1}^{t} log a_r for s <= t, -inf above the diagonal: the log of
    the product of the gates between two tokens, without dividing cumulative products."""
    import torch

    size = log_gates.shape[-1]
    x = log_gates[..., :, None].expand(*log_gates.shape, size)
    below = torch.ones(size, size, dtype=torch.bool, device=log_gates.device).tril(-1)
    seg = torch.cumsum(x.masked_fill(~below, 0.0), dim=-2)
    return seg.masked_fill(~below.logical_or(torch.eye(size, dtype=torch.bool, device=log_gates.device)), -torch.inf)


def chunked(q, k, v, a=None, b=None, *, delta: bool = False, chunk: int = 64):
    """The recurrence S_t = a_t S_{t-1} + b_t (v_t - d a_t S_{t-1} k_t) k_t^T, o_t = S_t q_t over
    whole sequences in torch, chunk by chunk (see the module docstring); differentiable.

    ``q``, ``k`` (B, T, d_k), ``v`` (B, T, d_v) and ``a``, ``b`` (B, T; default ones) are torch
    tensors of one dtype and device. Returns o (B, T, d_v) and the final state S (B, d_v, d_k).
    """
    import torch

    chunk = check("chunk", chunk, Int(1, 1_000_000))
    batch, tokens, d_k = k.shape
    a = torch.ones(batch, tokens, dtype=k.dtype, device=k.device) if a is None else a
    b = torch.ones(batch, tokens, dtype=k.dtype, device=k.device) if b is None else b
    state = k.new_zeros(batch, v.shape[2], d_k)
    outs = []
    for start in range(0, tokens, chunk):
        part = slice(start, min(start + chunk, tokens))
        qc, kc, vc, bc = q[:, part], k[:, part], v[:, part], b[:, part, None]
        log_a = torch.log(a[:, part])
        cumulative = torch.exp(torch.cumsum(log_a, 1))[:, :, None]  # G_t: gates from the chunk's start
        decay = torch.exp(_segsum(log_a))  # D[t, s] = G_t / G_s for s <= t, else 0
        if delta:
            inner = (kc @ kc.transpose(1, 2) * decay).tril(-1)
            system = torch.eye(kc.shape[1], dtype=k.dtype, device=k.device) + bc * inner
            written = torch.linalg.solve_triangular(
                system, bc * (vc - cumulative * (kc @ state.transpose(1, 2))), upper=False, unitriangular=True)
        else:
            written = bc * vc
        outs.append(cumulative * (qc @ state.transpose(1, 2)) + (qc @ kc.transpose(1, 2) * decay) @ written)
        state = cumulative[:, -1:] * state + (written * decay[:, -1, :, None]).transpose(1, 2) @ kc
    return torch.cat(outs, 1), state


# ----------------------------------------------------------------------------- softmax attention


def available_bytes(device: Any = None) -> int:
    """Free memory where arrays of ``device`` live: the GPU's free memory for a CUDA device, else
    the machine's physical memory."""
    import os

    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(what: str, needed: int, device: Any = None) -> None:
    """A ConfigError saying how much memory ``what`` would need, when it exceeds what is there."""
    have = available_bytes(device)
    if needed > have:
        raise ConfigError(f"{what} would need {needed / 2**30:.3g} GiB; {have / 2**30:.3g} GiB are available here")


def softmax_attention(q, k, v, *, beta: float = 1.0, causal: bool = True):
    """Softmax attention V^T softmax(beta K q) for every query (torch, differentiable): the
    non-parametric memory's parallel form, causal by default. q, k (B, T, d_k), v (B, T, d_v).
    Its (B, T, T) scores must fit in memory (a ConfigError says how much they need)."""
    import torch

    check_fits(f"softmax attention over {k.shape[1]} tokens (scores of shape {q.shape[0]} x {q.shape[1]} x {k.shape[1]})",
               2 * q.shape[0] * q.shape[1] * k.shape[1] * q.element_size(), q.device)
    scores = beta * q @ k.transpose(1, 2)
    if causal:
        future = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, -torch.inf)
    return torch.softmax(scores, -1) @ v


def softmax_recurrent(q, k, v, *, beta: float = 1.0, separation: str = "softmax", power: int = 3,
                      backend: str = "numba", dtype: str = "float64", device: str | None = None) -> np.ndarray:
    """Softmax attention token by token: every key and value kept, token t read by one universal
    Hopfield retrieval (dot similarity, softmax separation) over the keys and values so far.
    ``separation`` "max" (the value of the most similar key) or "polynomial" (weights
    (s - min s)^``power``, normalised) are the universal Hopfield network's other readings."""
    from plasticity.networks.uhn import MAX_POWER, retrieve

    q, k, v, _, _ = check_sequence(q, k, v)
    beta = check("beta", beta, Real(0, 1e6, low_open=True))
    separation = check("separation", separation, Choice("softmax", "max", "polynomial"))
    power = check("power", power, Int(1, MAX_POWER))
    runtime = resolve(backend, device, dtype)
    out = np.empty(v.shape)
    for t in range(k.shape[1]):
        read = retrieve(runtime, runtime.array(k[:, : t + 1]), runtime.array(v[:, : t + 1]), runtime.array(q[:, t]),
                        "dot", separation, beta * k.shape[2], power)
        out[:, t] = runtime.host(read)
    return out

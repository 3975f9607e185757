"""Sequence memories as local rules (attention as associative memory): the recurrent engine form,
the scan fast path and the chunked torch form agree, and the regression identities hold."""

import numpy as np
import pytest
import torch

import reference
from plasticity.errors import ConfigError, EquationError
from plasticity.networks import attention as att
from plasticity.networks.modern import ModernHopfield

B, T, DK, DV = 2, 11, 4, 3


def sequences(seed=0, tokens=T, d_k=DK, d_v=DV, batch=B):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((batch, tokens, d_k)), rng.standard_normal((batch, tokens, d_k)) / np.sqrt(d_k)
    v = rng.standard_normal((batch, tokens, d_v))
    return q, k, v, rng.uniform(0.6, 1.0, (batch, tokens)), rng.uniform(0.1, 1.0, (batch, tokens))


def _torch(*arrays, dtype=torch.float64):
    return [torch.tensor(x, dtype=dtype) for x in arrays]


@pytest.mark.parametrize("memory", att.FAST_WEIGHT)
def test_forms_agree_float64(memory):
    """Engine (numba, torch) = scan (numba, torch loop) = chunked (several chunk sizes) = reference, to 1e-10."""
    q, k, v, a, b = sequences()
    ae, be = att.effective_gates(memory, a, b, 0.9)
    expected = np.array([reference.sequence_memory(q[n], k[n], v[n], ae[n], be[n], att.FAMILY[memory].delta) for n in range(B)])
    outs = {
        "engine numba": att.recurrent(memory, q, k, v, a, b, gamma=0.9),
        "engine torch": att.recurrent(memory, q, k, v, a, b, gamma=0.9, backend="torch"),
        "scan numba": att.scan(memory, q, k, v, a, b, gamma=0.9),
        "scan torch": att.scan(memory, q, k, v, a, b, gamma=0.9, backend="torch"),
    }
    for chunk in (1, 4, T):
        out, _ = att.chunked(*_torch(q, k, v, ae, be), delta=att.FAMILY[memory].delta, chunk=chunk)
        outs[f"chunked {chunk}"] = out.numpy()
    for name, out in outs.items():
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("memory", ["gated", "gated_delta"])
def test_forms_agree_float32(memory):
    q, k, v, a, b = sequences(1, tokens=40)
    ae, be = att.effective_gates(memory, a, b, 0.95)
    exact = att.scan(memory, q, k, v, a, b)
    scale = np.abs(exact).max()
    for out in (att.scan(memory, q, k, v, a, b, dtype="float32"), att.recurrent(memory, q, k, v, a, b, dtype="float32"),
                att.chunked(*_torch(q, k, v, ae, be, dtype=torch.float32), delta=att.FAMILY[memory].delta, chunk=16)[0].numpy()):
        assert np.abs(out - exact).max() <= 1e-5 * scale


def test_a_users_strict_3q_rule_writes_the_memory():
    """A strict three-equation delta rule (additions and multiplications only) on the same interface
    is DeltaNet with write strength eta."""
    rule = {"equations": ["r_post = v_post - I_post", "u_pre = x_pre", "w += eta * r_post * u_pre"], "params": {"eta": 0.5},
            "form": "strict"}
    q, k, v, a, _ = sequences(2)
    out = att.recurrent(rule, q, k, v, a)
    np.testing.assert_allclose(out, att.scan("delta", q, k, v, b=np.full(a.shape, 0.5)), rtol=0, atol=1e-12)


def test_chunked_form_is_differentiable():
    q, k, v, a, b = _torch(*sequences(3, tokens=6, batch=1))
    inputs = [x.requires_grad_() for x in (q, k, v, a, b)]
    assert torch.autograd.gradcheck(lambda *x: att.chunked(*x, delta=True, chunk=4)[0], inputs)


# ----------------------------------------------------------------------------- the identities (float64, 1e-10)


def test_softmax_attention_is_kernel_regression_and_one_modern_hopfield_step():
    q, k, v, _, _ = sequences(4, tokens=9)
    beta = 1.7
    parallel = att.softmax_attention(*_torch(q, k, v), beta=beta).numpy()
    recurrent = att.softmax_recurrent(q, k, v, beta=beta)
    for n in range(B):
        for t in range(9):
            expected = reference.nadaraya_watson(q[n, t], k[n, : t + 1], v[n, : t + 1], beta)
            np.testing.assert_allclose(parallel[n, t], expected, rtol=0, atol=1e-12)
            np.testing.assert_allclose(recurrent[n, t], expected, rtol=0, atol=1e-12)
    nearest = att.softmax_recurrent(q, k, v, separation="max")  # the max-separation variant: the most similar key's value
    for n in range(B):
        for t in range(9):
            np.testing.assert_array_equal(nearest[n, t], v[n, np.argmax(k[n, : t + 1] @ q[n, t])])
    patterns = k[0]  # keys = values = the stored patterns: one modern Hopfield update (Ramsauer et al. 2020)
    everything = att.softmax_attention(*_torch(q[:1], patterns[None], patterns[None]), beta=beta, causal=False).numpy()[0]
    np.testing.assert_allclose(everything, ModernHopfield(patterns, beta=beta, dtype="float64").retrieve(q[0]), rtol=0,
                               atol=1e-12)


def test_linear_attention_is_the_hebbian_sum_and_regression_needs_the_inverse_covariance():
    """Linear attention's state is V^T K; the least-squares read-out, weighting the stored values by
    x*^T (X^T X)^-1 x_i (the regression identity), recalls every stored value of independent keys,
    linear attention only of orthonormal ones; one gradient step from S = 0 on the in-context
    least-squares loss is eta times the linear-attention read-out (von Oswald et al. 2023)."""
    rng = np.random.default_rng(5)
    n, d_k, d_v = 6, 8, 3
    keys, values = rng.standard_normal((n, d_k)), rng.standard_normal((n, d_v))
    _, state = att.chunked(*_torch(keys[None], keys[None], values[None]), chunk=4)
    np.testing.assert_allclose(state[0].numpy(), values.T @ keys, rtol=0, atol=1e-12)
    minimum_norm = values.T @ np.linalg.solve(keys @ keys.T, keys)  # V^T (K K^T)^-1 K, n <= d_k
    np.testing.assert_allclose(keys @ minimum_norm.T, values, rtol=0, atol=1e-10)
    assert np.abs(keys @ state[0].numpy().T - values).max() > 0.5  # linear attention: crosstalk
    orthonormal = np.linalg.qr(rng.standard_normal((d_k, d_k)))[0][:n]
    _, state = att.chunked(*_torch(orthonormal[None], orthonormal[None], values[None]), chunk=4)
    np.testing.assert_allclose(orthonormal @ state[0].numpy().T, values, rtol=0, atol=1e-12)

    tall, targets, query = rng.standard_normal((20, 5)), rng.standard_normal((20, 2)), rng.standard_normal(5)
    weights = query @ np.linalg.solve(tall.T @ tall, tall.T)  # x*^T (X^T X)^-1 x_i for each i, n >= d_k
    np.testing.assert_allclose(weights @ targets, np.linalg.lstsq(tall, targets, rcond=None)[0].T @ query, rtol=0, atol=1e-10)

    eta = 0.3
    s = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * ((torch.tensor(targets) - torch.tensor(tall) @ s.T) ** 2).sum()
    (gradient,) = torch.autograd.grad(loss, s)
    one_step = (-eta * gradient).numpy() @ query
    _, state = att.chunked(*_torch(tall[None], tall[None], targets[None]), chunk=8)
    np.testing.assert_allclose(one_step, eta * state[0].numpy() @ query, rtol=0, atol=1e-10)


def test_deltanet_stores_exactly_and_converges_to_the_minimum_norm_interpolant():
    """Orthonormal keys with b = 1 are stored exactly; independent keys with b = 1 / ||k||^2, passed
    over repeatedly, converge to the minimum-norm interpolant V^T (K K^T)^-1 K (Kaczmarz)."""
    rng = np.random.default_rng(6)
    n, d_k, d_v = 5, 8, 3
    values = rng.standard_normal((n, d_v))
    orthonormal = np.linalg.qr(rng.standard_normal((d_k, d_k)))[0][:n]
    queries = np.vstack([orthonormal, orthonormal])[None]
    read = att.scan("delta", queries, np.vstack([orthonormal, np.zeros((n, d_k))])[None], np.vstack([values, values])[None])
    np.testing.assert_allclose(read[0, n:], values, rtol=0, atol=1e-12)
    keys = rng.standard_normal((n, d_k))
    passes = 300
    sweep = np.tile(keys, (passes, 1))[None]
    strength = np.tile(1.0 / (keys**2).sum(1), passes)[None]
    _, state = att.chunked(*_torch(sweep, sweep, np.tile(values, (passes, 1))[None], np.ones_like(strength), strength),
                           delta=True, chunk=64)
    np.testing.assert_allclose(state[0].numpy(), values.T @ np.linalg.solve(keys @ keys.T, keys), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    q, k, v, a, b = sequences()
    with pytest.raises(ConfigError, match="q and k must have the same shape"):
        att.scan("linear", q[:, :, :3], k, v)
    with pytest.raises(ConfigError, match=r"a must be a finite \(batch, tokens\) array in \[0, 1\]"):
        att.scan("gated", q, k, v, a=a + 1.0)
    with pytest.raises(ConfigError, match="b must be"):
        att.recurrent("delta", q, k, v, b=-b)
    with pytest.raises(ConfigError, match="v must have the keys' batch and tokens"):
        att.scan("linear", q, k, v[:, :5])
    with pytest.raises(ConfigError, match="memory must be one of 'linear'"):
        att.scan("softmax", q, k, v)
    huge = torch.zeros(1, 1, 4).expand(1, 10**6, 4)  # no memory behind it: the check comes before any work
    with pytest.raises(ConfigError, match=r"softmax attention over 1000000 tokens .* would need 7.45e\+03 GiB"):
        att.softmax_attention(huge, huge, huge)
    with pytest.raises(EquationError, match="a sequence memory offers x_pre"):
        att.recurrent({"equations": ["w += z_post * x_pre"]}, q, k, v)

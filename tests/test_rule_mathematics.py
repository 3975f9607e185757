"""Every library rule's update, one or two steps, against the paper's formula on small fixed numbers.

Cross-backend tests evaluate the same equation on every backend, so a wrong sign or factor in a
rule's equation passes them all; here the expected values are written from each paper's formula
(element by element where the formula sums or orders units), independently of the equation
strings, so a flipped sign, a missing factor or a term on the wrong side of a synapse fails.
The numbers are chosen so that every term of a rule changes the result.
"""

from __future__ import annotations

import numpy as np
import pytest

import plasticity as pl
from plasticity.rules import get_rule, list_rules

W0 = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]])  # post x pre
X = np.array([1.0, 2.0, -1.0])  # what the pre units send
Y = np.array([0.5, -1.5])  # the post units' activity


def _run(rule, pre_vars, post_vars, inputs, *, init=None, params=None, steps=1, target="I", source="x"):
    """A pre -> post projection ``p`` with ``rule`` (float64, numpy); every unit variable is an input."""
    pre = pl.Population(len(X), init={var: 0.0 for var in pre_vars}, name="pre")
    post = pl.Population(len(Y), init={var: 0.0 for var in post_vars}, name="post")
    projection = pl.Projection(pre, post, rule, source=source, target=target, params=params,
                               init={"w": W0, **(init or {})}, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), backend="numpy", dtype="float64")
    sim.run(steps, inputs={key: np.broadcast_to(value, (steps, *np.shape(value)[-1:])) if np.ndim(value) == 1
                           else value for key, value in inputs.items()})
    return sim


def _weights(sim, key="p.w"):
    return sim.get(key)[0]


def test_hebb():
    """Hebb with passive decay (Dayan & Abbott 2001, eq. 8.3 with decay): dw_ij = eta y_i x_j - decay w_ij."""
    sim = _run("hebb", ["x"], ["y"], {"pre.x": X, "post.y": Y}, params={"eta": 0.1, "decay": 0.05})
    expected = W0 + 0.1 * np.outer(Y, X) - 0.05 * W0
    # one element by hand: w_10 = 0.4 + 0.1 * (-1.5) * 1 - 0.05 * 0.4 = 0.23
    assert _weights(sim)[1, 0] == pytest.approx(0.23)
    np.testing.assert_allclose(_weights(sim), expected, rtol=1e-12)


def test_storage_hebbian_is_the_outer_product_sum():
    """Hopfield (1982): J = sum_mu xi_mu xi_mu^T (eta = 1, no decay), self-couplings masked to zero."""
    patterns = np.array([[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, -1.0]])
    w = _storage("hebbian", patterns)
    expected = sum(np.outer(xi, xi) for xi in patterns) * (1 - np.eye(4))
    np.testing.assert_array_equal(w, expected)


def test_oja():
    """Oja (1982), eq. 3: dw_ij = eta y_i (x_j - y_i w_ij): the decay is y^2 w, on the post side."""
    sim = _run("oja", ["x"], ["y"], {"pre.x": X, "post.y": Y}, params={"eta": 0.1})
    expected = np.array([[W0[i, j] + 0.1 * Y[i] * (X[j] - Y[i] * W0[i, j]) for j in range(3)] for i in range(2)])
    # by hand: w_01 = -0.2 + 0.1 * 0.5 * (2 - 0.5 * (-0.2)) = -0.095
    assert _weights(sim)[0, 1] == pytest.approx(-0.095)
    np.testing.assert_allclose(_weights(sim), expected, rtol=1e-12)


def test_sanger():
    """Sanger (1989), eq. 5: dw_ij = eta y_i (x_j - sum_{k <= i} y_k w_kj), the sum over outputs 0..i."""
    sim = _run("sanger", ["x"], ["y"], {"pre.x": X, "post.y": Y}, params={"eta": 0.1})
    expected = np.array([[W0[i, j] + 0.1 * Y[i] * (X[j] - sum(Y[k] * W0[k, j] for k in range(i + 1)))
                          for j in range(3)] for i in range(2)])
    # by hand: w_10 = 0.4 + 0.1 * (-1.5) * (1 - (0.5 * 0.1 + (-1.5) * 0.4)) = 0.4 - 0.15 * 1.55 = 0.1675
    assert _weights(sim)[1, 0] == pytest.approx(0.1675)
    np.testing.assert_allclose(_weights(sim), expected, rtol=1e-12)


def test_bcm():
    """BCM (1982) with the Intrator & Cooper (1992) threshold: dw = eta x y (y - theta) with the threshold
    before the step, then dtheta = (y^2 - theta) dt / tau."""
    theta0 = np.array([0.2, 3.0])  # unit 0 above its threshold (potentiation), unit 1 below (depression)
    sim = _run("bcm", ["x"], ["y"], {"pre.x": X, "post.y": Y}, init={"theta_post": theta0},
               params={"eta": 0.1, "tau": 4.0})
    expected = W0 + 0.1 * np.outer(Y * (Y - theta0), X)
    np.testing.assert_allclose(_weights(sim), expected, rtol=1e-12)
    np.testing.assert_allclose(sim.get("p.theta_post")[0], theta0 + (Y**2 - theta0) / 4.0, rtol=1e-12)
    # by hand: theta_1 = 3 + (2.25 - 3) / 4 = 2.8125; w_00 = 0.1 + 0.1 * 0.5 * 0.3 * 1 = 0.115
    assert sim.get("p.theta_post")[0, 1] == pytest.approx(2.8125)
    assert _weights(sim)[0, 0] == pytest.approx(0.115)


def test_bcm3q():
    """BCM as three equations: theta += alpha (y^2 - theta) first, phi = y (y - theta) with the new
    threshold, dw = eta phi x."""
    theta0 = np.array([0.2, 3.0])
    sim = _run("bcm3q", ["x"], ["y"], {"pre.x": X, "post.y": Y}, init={"theta_post": theta0},
               params={"eta": 0.1, "alpha": 0.5})
    theta = theta0 + 0.5 * (Y**2 - theta0)
    np.testing.assert_allclose(sim.get("p.theta_post")[0], theta, rtol=1e-12)
    np.testing.assert_allclose(_weights(sim), W0 + 0.1 * np.outer(Y * (Y - theta), X), rtol=1e-12)


def test_covariance():
    """Sejnowski (1977): dw_ij = eta (y_i - <y_i>) (x_j - <x_j>), the means running averages updated first."""
    xbar0, ybar0 = np.array([0.5, -1.0, 0.25]), np.array([1.0, -0.5])
    sim = _run("covariance", ["x"], ["y"], {"pre.x": X, "post.y": Y},
               init={"xbar_pre": xbar0, "ybar_post": ybar0}, params={"eta": 0.1, "alpha": 0.5})
    xbar, ybar = xbar0 + 0.5 * (X - xbar0), ybar0 + 0.5 * (Y - ybar0)
    np.testing.assert_allclose(sim.get("p.xbar_pre")[0], xbar, rtol=1e-12)
    np.testing.assert_allclose(sim.get("p.ybar_post")[0], ybar, rtol=1e-12)
    np.testing.assert_allclose(_weights(sim), W0 + 0.1 * np.outer(Y - ybar, X - xbar), rtol=1e-12)
    # by hand: xbar_0 = 0.75, ybar_1 = -1; w_10 = 0.4 + 0.1 * (-0.5) * 0.25 = 0.3875
    assert _weights(sim)[1, 0] == pytest.approx(0.3875)


def test_foldiak():
    """Foldiak (1990), eq. 4: dw_ij = -eta (y_i y_j - p^2) on lateral weights: co-active units inhibit more."""
    y = np.array([1.0, -0.5, 2.0])
    units = pl.Population(3, init={"y": 0.0}, name="units")
    w0 = np.array([[0.0, 0.1, -0.2], [0.1, 0.0, 0.3], [-0.2, 0.3, 0.0]])
    lateral = pl.Projection(units, units, "foldiak", source="y", params={"eta": 0.1, "p": 0.5},
                            init={"w": w0}, mask=~np.eye(3, dtype=bool), name="p")
    sim = pl.Simulation(pl.Network([units], [lateral]), backend="numpy", dtype="float64")
    sim.run(1, inputs={"units.y": y[None]})
    expected = (w0 - 0.1 * (np.outer(y, y) - 0.25)) * (1 - np.eye(3))
    # by hand: w_02 = -0.2 - 0.1 * (1 * 2 - 0.25) = -0.375 (more inhibition between co-active units)
    assert _weights(sim)[0, 2] == pytest.approx(-0.375)
    np.testing.assert_allclose(_weights(sim), expected, rtol=1e-12)


def test_delta():
    """Widrow & Hoff (1960): dw_ij = eta (t_i - y_i) x_j: towards the target."""
    target = np.array([1.0, 1.0])
    sim = _run("delta", ["x"], ["y", "target"], {"pre.x": X, "post.y": Y, "post.target": target},
               params={"eta": 0.1})
    # by hand: w_11 = 0.5 + 0.1 * (1 - (-1.5)) * 2 = 1.0
    assert _weights(sim)[1, 1] == pytest.approx(1.0)
    np.testing.assert_allclose(_weights(sim), W0 + 0.1 * np.outer(target - Y, X), rtol=1e-12)


def test_perceptron():
    """Rosenblatt (1958): when t_i I_i <= kappa (I = W x), dw_ij = eta t_i x_j, else no change."""
    # I = W0 x = [-0.6, 2.0]: the unit whose target has the other sign, or the same sign within the
    # margin kappa, learns; the other does not.
    cases = (([1.0, 1.0], 0.0, [True, False]), ([-1.0, 1.0], 0.5, [False, False]),
             ([-1.0, 1.0], 1.0, [True, False]), ([1.0, -1.0], 0.0, [True, True]))
    for target, kappa, changed in cases:
        target = np.array(target)
        sim = _run("perceptron", ["x"], ["target"], {"pre.x": X, "post.target": target},
                   params={"eta": 0.5, "kappa": kappa})
        drive = W0 @ X
        np.testing.assert_allclose(sim.get("post.I")[0], drive, rtol=1e-12)
        wrong = target * drive <= kappa
        assert list(wrong) == changed
        np.testing.assert_allclose(_weights(sim), W0 + 0.5 * np.outer(wrong * target, X), rtol=1e-12)


def test_three_factor():
    """Fremaux & Gerstner (2016): eligibility e += alpha (y x - e), then dw = eta (m - baseline) e."""
    e0 = np.full((2, 3), 0.2)
    for modulator in (2.0, -1.0):
        sim = _run("three_factor", ["x"], ["y"], {"pre.x": X, "post.y": Y, "p.m": np.array([modulator])},
                   init={"e": e0}, params={"eta": 0.1, "alpha": 0.5, "baseline": 0.5})
        e = e0 + 0.5 * (np.outer(Y, X) - e0)
        np.testing.assert_allclose(sim.get("p.e")[0], e, rtol=1e-12)
        np.testing.assert_allclose(_weights(sim), W0 + 0.1 * (modulator - 0.5) * e, rtol=1e-12)


def test_pc():
    """Whittington & Bogacz (2017), eq. 12: dW = lr e_post f(x_pre)^T, the negative energy gradient."""
    e, fx = np.array([0.3, -0.7]), np.array([0.2, -0.4, 0.9])
    sim = _run("pc", ["fx"], ["e"], {"pre.fx": fx, "post.e": e}, params={"lr": 0.1}, source="fx")
    np.testing.assert_allclose(_weights(sim), W0 + 0.1 * np.outer(e, fx), rtol=1e-12)


def test_pc_adam():
    """Kingma & Ba (2015), Algorithm 1, two steps on the gradient g = e fx^T: m = b1 m + (1 - b1) g,
    v = b2 v + (1 - b2) g^2, dw = lr m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)."""
    es = np.array([[0.3, -0.7], [-0.1, 0.2]])
    fxs = np.array([[0.2, -0.4, 0.9], [0.5, 0.5, -1.0]])
    params = {"lr": 0.1, "beta1": 0.8, "beta2": 0.9, "eps": 0.01}
    sim = _run("pc_adam", ["fx"], ["e"], {"pre.fx": fxs, "post.e": es}, params=params, steps=2, source="fx")
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t in (1, 2):
        g = np.outer(es[t - 1], fxs[t - 1])
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        w = w + 0.1 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 0.01)
    assert sim.get("p.n_post")[0].tolist() == [2.0, 2.0]
    np.testing.assert_allclose(sim.get("p.m")[0], m, rtol=1e-12)
    np.testing.assert_allclose(sim.get("p.v")[0], v, rtol=1e-12)
    np.testing.assert_allclose(_weights(sim), w, rtol=1e-12)


def test_pc_linear_3q():
    """Linear predictive coding (Rao & Ballard 1999): e = v - mu with mu = W x, then the value descends
    |e|^2/2 + |y - v|^2/2: v += gamma (y - v - e), then dW = lr e x^T."""
    v0 = np.array([0.25, -0.5])
    sim = _run("pc_linear_3q", ["x"], ["y"], {"pre.x": X, "post.y": Y}, init={"v_post": v0},
               params={"lr": 0.1, "gamma": 0.5}, target="mu")
    e = v0 - W0 @ X  # mu = W0 x = [-0.6, 2.0]
    np.testing.assert_allclose(sim.get("p.e_post")[0], e, rtol=1e-12)
    np.testing.assert_allclose(sim.get("p.v_post")[0], v0 + 0.5 * (Y - v0 - e), rtol=1e-12)
    np.testing.assert_allclose(_weights(sim), W0 + 0.1 * np.outer(e, X), rtol=1e-12)


def _storage(rule, patterns):
    """Couplings after presenting ``patterns`` one per step to a recurrent memory storing with ``rule``."""
    return _weights(_memory(get_rule(rule), patterns))


def _memory(rule, patterns, sim=None):
    """A recurrent memory (self-couplings masked) that has stored ``patterns`` one per step; ``sim`` goes on storing."""
    if sim is None:
        n = patterns.shape[1]
        variables = (rule.unit_reads("pre") | rule.unit_reads("post") | {"x", "y"}) - {"I"}
        units = pl.Population(n, init={var: float(n) if var == "n" else 0.0 for var in sorted(variables)}, name="units")
        couplings = pl.Projection(units, units, rule, source="x", init={"w": 0.0}, mask=~np.eye(n, dtype=bool), name="p")
        sim = pl.Simulation(pl.Network([units], [couplings]), backend="numpy", dtype="float64")
    sim.run(len(patterns), inputs={"units.x": patterns, "units.y": patterns})  # a stored unit's activity is its pattern
    return sim


def _storkey_by_formula(w, xi):
    """Storkey (1997), eq. 3: w_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / n, h_ij = sum_{k != i, j} w_ik xi_k."""
    n = len(xi)
    h = np.array([[sum(w[i, k] * xi[k] for k in range(n) if k not in (i, j)) for j in range(n)] for i in range(n)])
    new = w + (np.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
    return new * (1 - np.eye(n))


def test_storkey_on_four_units_by_hand():
    """Storkey's rule on 4 units, two patterns. The first, xi1 = (1, 1, -1, -1), stored on zero couplings
    (h = 0), gives w = xi1 xi1^T / 4 off the diagonal. For xi2 = (1, -1, 1, -1) the local fields
    h_ij = sum_{k != i,j} w_ik xi2_k are h_03 = -w_01 + w_02 = -1/2 and h_30 = -w_31 + w_32 = 1/2, so
    w_03 = -1/4 + (xi_0 xi_3 - xi_0 h_30 - h_03 xi_3) / 4 = -1/4 + (-1 - 1/2 - 1/2) / 4 = -3/4; and
    h_01 = w_02 - w_03 = 0 = h_10, so w_01 = 1/4 + (-1) / 4 = 0. The same by hand for the
    other pairs gives -3/4 on the anti-diagonal and 0 elsewhere."""
    patterns = np.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    first = _storage("storkey", patterns[:1])
    np.testing.assert_allclose(first, np.array([[0, 1, -1, -1], [1, 0, -1, -1], [-1, -1, 0, 1], [-1, -1, 1, 0]]) / 4)
    by_hand = np.array([
        [0.0, 0.0, 0.0, -0.75],
        [0.0, 0.0, -0.75, 0.0],
        [0.0, -0.75, 0.0, 0.0],
        [-0.75, 0.0, 0.0, 0.0],
    ])
    w = _storage("storkey", patterns)
    np.testing.assert_allclose(_storkey_by_formula(_storkey_by_formula(np.zeros((4, 4)), patterns[0]), patterns[1]),
                               by_hand, atol=1e-15)
    np.testing.assert_allclose(w, by_hand, atol=1e-12)


def test_storkey_on_a_random_memory_equals_its_formula():
    """Three patterns on 7 units: an asymmetric index error (h_ij for h_ji) would show here."""
    rng = np.random.default_rng(3)
    patterns = rng.choice([-1.0, 1.0], size=(3, 7))
    expected = np.zeros((7, 7))
    for xi in patterns:
        expected = _storkey_by_formula(expected, xi)
    np.testing.assert_allclose(_storage("storkey", patterns), expected, rtol=1e-12, atol=1e-12)


def test_pseudoinverse_gives_the_projection_matrix():
    """Personnaz et al. (1985): W = X^+ X (the orthogonal projection onto the patterns' span), with the
    diagonal held in d; after one pattern, W = xi xi^T / |xi|^2 (here 1/4 off the diagonal)."""
    patterns = np.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0]])
    sim = _memory(get_rule("pseudoinverse"), patterns[:1])
    np.testing.assert_allclose(_weights(sim), np.outer(patterns[0], patterns[0]) / 4 * (1 - np.eye(4)), rtol=1e-12)
    _memory(get_rule("pseudoinverse"), patterns[1:], sim)
    projector = np.linalg.pinv(patterns) @ patterns
    full = _weights(sim) + np.diag(sim.get("p.d_post")[0])
    np.testing.assert_allclose(full, projector, atol=1e-12)
    np.testing.assert_allclose(sim.get("p.d_pre")[0], np.diag(projector), atol=1e-12)


def test_pseudoinverse_skips_a_pattern_without_residual():
    """Greville's recursion adds e e^T / |e|^2 only when the residual is above the tolerance (|e|^2 > tol):
    a pattern already stored (e = 0) changes nothing, and neither does one whose |e|^2 equals tol."""
    rule = get_rule("pseudoinverse")
    patterns = np.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, 1.0]])
    sim = _memory(rule, patterns)
    stored = [sim.get(key).copy() for key in ("p.w", "p.d_post", "p.d_pre")]
    _memory(rule, patterns[::-1], sim)  # both again: zero residuals
    for key, before in zip(("p.w", "p.d_post", "p.d_pre"), stored):
        np.testing.assert_allclose(sim.get(key), before, atol=1e-12)
    at_tolerance = _memory(rule.with_params(tol=4.0), patterns[:1])  # |e|^2 = |xi|^2 = 4, not above tol
    for key in ("p.w", "p.d_post", "p.d_pre"):
        assert not at_tolerance.get(key).any(), key


HAND_CHECKED = {
    "hebb": test_hebb, "hebbian": test_storage_hebbian_is_the_outer_product_sum, "oja": test_oja,
    "sanger": test_sanger, "bcm": test_bcm, "bcm3q": test_bcm3q, "covariance": test_covariance,
    "foldiak": test_foldiak, "delta": test_delta, "perceptron": test_perceptron,
    "three_factor": test_three_factor, "pc": test_pc, "pc_adam": test_pc_adam,
    "pc_linear_3q": test_pc_linear_3q, "storkey": test_storkey_on_four_units_by_hand,
    "pseudoinverse": test_pseudoinverse_gives_the_projection_matrix,
}


def test_every_library_rule_has_a_hand_computed_update():
    """A rule added to the library without a test of its mathematics fails here."""
    assert set(list_rules()) == set(HAND_CHECKED)

"""Fixed points of a rule's expected update and their stability (analysis.stability), against Oja (1982)."""

from __future__ import annotations

import numpy as np
import pytest

from plasticity.analysis.stability import ExpectedUpdate, fixed_point, stability
from plasticity.errors import ConfigError
from plasticity.rules import get_rule

EIGENVALUES = np.array([4.0, 2.0, 1.0, 0.5])
ETA = 0.01


def _samples_with_covariance(eigenvalues, rng):
    """±sqrt(n lambda_i) e_i for a random orthonormal basis: mean 0, covariance sum_i lambda_i e_i e_i^T exactly."""
    n = len(eigenvalues)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    vectors = basis.T  # rows e_i
    scaled = np.sqrt(n * eigenvalues)[:, None] * vectors
    return np.concatenate([scaled, -scaled]), vectors


def test_oja_fixed_points_are_the_eigenvectors_and_only_the_first_is_stable(backend="numpy"):
    samples, vectors = _samples_with_covariance(EIGENVALUES, np.random.default_rng(0))
    assert np.allclose(samples.T @ samples / len(samples), vectors.T @ np.diag(EIGENVALUES) @ vectors)
    update = ExpectedUpdate(get_rule("oja").with_params(eta=ETA), samples, backend=backend)
    w = np.random.default_rng(1).standard_normal(4)
    expected = ETA * (samples.T @ samples / len(samples) @ w - (w @ samples.T @ samples / len(samples) @ w) * w)
    assert np.allclose(update(w)[0], expected, rtol=1e-10, atol=1e-12)  # one update by hand: E[y (x - y w)]
    rng = np.random.default_rng(2)
    for i, lam in enumerate(EIGENVALUES):
        point = fixed_point(update, vectors[i] + 0.05 * rng.standard_normal(4))
        assert abs(abs(point[0] @ vectors[i]) - 1.0) < 1e-8  # ±e_i, unit norm
        result = stability(update, point)
        others = [ETA * (EIGENVALUES[j] - lam) for j in range(4) if j != i]
        assert np.allclose(np.sort(result["eigenvalue_real"].values), np.sort(others + [-2 * ETA * lam]), atol=1e-7)
        assert np.allclose(result["eigenvalue_imag"].values, 0.0, atol=1e-7)
        assert result.attrs["kind"] == ("stable" if i == 0 else "saddle")


def test_hebbian_growth_has_an_unstable_origin_and_bad_samples_are_refused():
    samples, _ = _samples_with_covariance(EIGENVALUES, np.random.default_rng(3))
    update = ExpectedUpdate(get_rule("hebb").with_params(eta=ETA, decay=0.0), samples)
    result = stability(update, np.zeros(4))  # dW = eta C W: every direction grows
    assert result.attrs["kind"] == "unstable"
    assert np.allclose(np.sort(result["eigenvalue_real"].values), np.sort(ETA * EIGENVALUES))
    with pytest.raises(ConfigError, match="samples"):
        ExpectedUpdate("oja", np.ones(3))


BCM_ETA, BCM_TAU = 0.001, 100.0  # the library's defaults: the threshold (rate 1 / tau = 0.01) is faster than the weights


def _bcm_eigenvalues(trace, det):
    root = np.sqrt(complex(trace * trace - 4 * det))
    return np.array([(trace + root) / 2, (trace - root) / 2])


@pytest.mark.parametrize("k", [2, 3])
def test_bcm_threshold_makes_selective_fixed_points_stable(k):
    """BCM (Bienenstock, Cooper & Munro 1982) with its sliding threshold in the state:
    dw = eta x y (y - theta), dtheta = (y^2 - theta) / tau, on k orthonormal patterns x_1 .. x_k shown
    with probability 1/k each. In the responses y_i = w . x_i (an orthogonal change of coordinates, so
    the eigenvalues are those of w), with a = eta / k and b = 1 / tau:

        dy_i = a y_i (y_i - theta),   dtheta = b (mean_i y_i^2 - theta).

    Fixed points: every y_i is 0 or theta, and theta = (s / k) theta^2 with s responses non-zero, so
    theta = k / s. Selective (s = 1, responds to pattern j only): y = k e_j, theta = k. Non-selective
    (s = k): y = 1, theta = 1. The Jacobian at a selective point has eigenvalue -eta along each y_i,
    i != j (a (0 - theta)), and on (y_j, theta) the block [[eta, -eta], [2 b, -b]]: trace eta - b,
    determinant eta b > 0, so stable iff b > eta, i.e. tau < 1 / eta (Intrator & Cooper 1992; Castellani
    et al. 1999). At the non-selective point every direction with sum_i v_i = 0 grows at a = eta / k,
    while the symmetric block [[a, -a], [2 b, -b]] is stable: a saddle, selectivity is where the rule
    goes. With the threshold slower than the weights (tau > 1 / eta), the selective point loses its
    stability in a pair of complex eigenvalues (oscillations; Udeigwe, Munro & Ermentrout 2017)."""
    basis, _ = np.linalg.qr(np.random.default_rng(k).standard_normal((k, k)))
    patterns = basis.T  # rows x_i, orthonormal
    rule = get_rule("bcm").with_params(eta=BCM_ETA, tau=BCM_TAU)
    update = ExpectedUpdate(rule, patterns, variables=["theta_post"])
    assert update.names == [f"w[0,{j}]" for j in range(k)] + ["theta_post[0]"]
    state = np.append(np.random.default_rng(0).normal(size=k), 0.7)
    y = patterns @ state[:k]
    by_hand = np.append(BCM_ETA / k * patterns.T @ (y * (y - 0.7)), (np.mean(y**2) - 0.7) / BCM_TAU)
    np.testing.assert_allclose(update(state), by_hand, rtol=1e-10, atol=1e-15)  # one expected update by hand

    a, b = BCM_ETA / k, 1 / BCM_TAU
    rng = np.random.default_rng(1)
    for j in range(k):
        selective = np.append(k * patterns[j], k)  # w = k x_j: y = k e_j, theta = k
        point = fixed_point(update, selective + 0.05 * rng.standard_normal(k + 1))
        np.testing.assert_allclose(point, selective, atol=1e-8)
        result = stability(update, point)
        expected = np.concatenate([np.full(k - 1, -BCM_ETA), _bcm_eigenvalues(BCM_ETA - b, BCM_ETA * b)])
        np.testing.assert_allclose(np.sort(result["eigenvalue_real"].values), np.sort(expected.real), atol=1e-9)
        assert result.attrs["kind"] == "stable"
    uniform = np.append(patterns.sum(axis=0), 1.0)  # w = sum_i x_i: y = 1, theta = 1
    point = fixed_point(update, uniform + 0.02 * rng.standard_normal(k + 1))
    np.testing.assert_allclose(point, uniform, atol=1e-8)
    result = stability(update, point)
    expected = np.concatenate([np.full(k - 1, a), _bcm_eigenvalues(a - b, a * b)])
    np.testing.assert_allclose(np.sort(result["eigenvalue_real"].values), np.sort(expected.real), atol=1e-9)
    assert result.attrs["kind"] == "saddle" and int((result["eigenvalue_real"] > 0).sum()) == k - 1
    assert stability(update, np.zeros(k + 1)).attrs["kind"] == "marginal"  # w = 0, theta = 0: no response, no drive

    slow = ExpectedUpdate(rule.with_params(tau=2000.0), patterns, variables=["theta_post"])  # 1 / tau = 0.0005 < eta
    result = stability(slow, np.append(k * patterns[0], k))
    expected = _bcm_eigenvalues(BCM_ETA - 1 / 2000.0, BCM_ETA / 2000.0)
    assert result.attrs["kind"] == "saddle" and np.all(expected.real > 0) and np.all(expected.imag != 0)
    np.testing.assert_allclose(np.sort(result["eigenvalue_real"].values)[-2:], expected.real, atol=1e-9)
    np.testing.assert_allclose(np.sort(np.abs(result["eigenvalue_imag"].values))[-2:], np.abs(expected.imag), atol=1e-9)


def test_bcm_selectivity_holds_for_patterns_that_are_not_orthogonal():
    """With two independent, non-orthogonal patterns the expected weight update vanishes only where each
    y_i (y_i - theta) does, so the fixed points in y are the same (y = 2 e_j, theta = 2; y = (1, 1),
    theta = 1), at w = X^-1 y; the Jacobian is no longer the orthonormal one, but the kinds stay."""
    patterns = np.array([[1.0, 0.3], [0.2, 0.8]])
    update = ExpectedUpdate(get_rule("bcm"), patterns, variables=["theta_post"])
    for responses, theta, kind in (([2.0, 0.0], 2.0, "stable"), ([0.0, 2.0], 2.0, "stable"), ([1.0, 1.0], 1.0, "saddle")):
        expected = np.append(np.linalg.solve(patterns, responses), theta)
        point = fixed_point(update, expected + 0.03)
        np.testing.assert_allclose(point, expected, atol=1e-8)
        assert stability(update, point).attrs["kind"] == kind
    with pytest.raises(ConfigError, match="variables names 'theta', which is not a per-unit variable.*theta_post"):
        ExpectedUpdate("bcm", patterns, variables=["theta"])

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

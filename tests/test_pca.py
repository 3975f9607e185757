"""The pca protocol and its oracles: Oja finds PC1 (Oja 1982), Sanger the top k in order (Sanger 1989)."""

import numpy as np
import pytest

import plasticity as pl
from plasticity.networks.pca import covariance_with_spectrum


def test_spectrum_and_basis_are_what_the_protocol_promises():
    eigenvalues, components = covariance_with_spectrum(6, 0.5, np.random.default_rng(0))
    np.testing.assert_allclose(eigenvalues, 0.5 ** np.arange(6))
    np.testing.assert_allclose(components @ components.T, np.eye(6), atol=1e-12)


def test_oja_single_output_converges_to_the_unit_norm_first_principal_component():
    """Oja (1982): w converges to the first eigenvector of the input covariance with |w| = 1 (the y^2 w
    decay normalises it; a decay twice as strong would give |w| = 1/sqrt(2))."""
    ds = pl.run_protocol("pca", {"rule": "oja", "k": 1, "trials": 8})
    final = ds.alignment.isel(time=-1)
    assert ds.alignment.dims == ("time", "trial", "component")
    assert float(final.min()) >= 0.99, final.values
    norms = np.linalg.norm(ds.weights.values, axis=-1)  # 1.0006-1.0009 at seed 0
    np.testing.assert_allclose(norms, 1.0, atol=0.02)
    assert float(ds.alignment.isel(time=0).mean()) < 0.9  # it learned, it did not start aligned
    assert ds.attrs["backend"] == "numba" and ds.attrs["protocol"] == "pca"


def test_sanger_outputs_align_with_the_top_components_in_order():
    """Sanger (1989): output i converges to component i, for every one of 128 independent learners (as many
    as 16 seeds of 8 trials: each trial draws its own initial weights and inputs, and the dynamics are the
    same in any rotated basis). With the protocol's defaults (eigenvalue ratio 0.5, eta = 0.003,
    12000 steps) the third output of 3 of 16 seeds had not converged (0.81, 0.92, 0.94): the run was short
    of the slowest time constant 1 / (eta (l3 - l4)). Here the spectrum is better conditioned (ratio 0.4)
    and the run longer in learning time (eta = 0.01): the smallest alignment of 640 learners over seeds
    0-4 is 0.985, against the 0.95 bar."""
    ds = pl.run_protocol("pca", {"rule": "sanger", "k": 3, "trials": 128, "eta": 0.01, "decay": 0.4})
    final = ds.alignment.isel(time=-1)
    assert float(final.min()) >= 0.95, final.values
    # in order: output i is not aligned with component j != i
    weights = ds.weights / np.linalg.norm(ds.weights, axis=-1, keepdims=True)
    cross = np.abs(np.einsum("tki,ji->tkj", weights.values, ds.components.values))
    off_diagonal = cross[:, ~np.eye(3, dtype=bool)]  # over trials
    assert off_diagonal.max() < 0.2


def test_pca_agrees_across_backends_for_the_same_seed():
    params = {"rule": "sanger", "k": 2, "steps": 300, "trials": 2, "record_every": 100}
    numpy = pl.run_protocol("pca", params, backend="numpy", seed=11)
    numba = pl.run_protocol("pca", params, backend="numba", seed=11)
    np.testing.assert_allclose(numba.weights, numpy.weights, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"rule": "bcm"}, "rule must be one of 'oja', 'sanger'"),
        ({"k": 20}, "k (outputs) must be at most n (inputs) = 16"),
        ({"decay": 1.5}, "decay must be a number in (0, 1); got 1.5"),
        ({"steps": 0}, "steps must be an integer in [1, 10000000]; got 0"),
        ({"eta": "0.1"}, "eta must be a number in (0, 1]; got '0.1'"),
        ({"lr": 0.1}, "protocol 'pca' has no parameter 'lr'; valid parameters: decay, eta, k, n, record_every, rule, steps, trials"),
    ],
)
def test_bad_parameters_are_clear_errors(params, fragment):
    with pytest.raises(pl.ConfigError) as raised:
        pl.run_protocol("pca", params, backend="numpy")
    assert fragment in str(raised.value)

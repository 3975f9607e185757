"""The pca protocol and its oracles: Oja finds PC1 (Oja 1982), Sanger the top k in order (Sanger 1989)."""

import numpy as np
import pytest

import plasticity as pl
from plasticity.networks.pca import covariance_with_spectrum


def test_spectrum_and_basis_are_what_the_protocol_promises():
    eigenvalues, components = covariance_with_spectrum(6, 0.5, np.random.default_rng(0))
    np.testing.assert_allclose(eigenvalues, 0.5 ** np.arange(6))
    np.testing.assert_allclose(components @ components.T, np.eye(6), atol=1e-12)


def test_oja_single_output_aligns_with_the_first_principal_component():
    ds = pl.run_protocol("pca", {"rule": "oja", "k": 1, "trials": 8})
    final = ds.alignment.isel(time=-1)
    assert ds.alignment.dims == ("time", "trial", "component")
    assert float(final.min()) >= 0.99, final.values
    assert float(ds.alignment.isel(time=0).mean()) < 0.9  # it learned, it did not start aligned
    assert ds.attrs["backend"] == "numba" and ds.attrs["protocol"] == "pca"


def test_sanger_outputs_align_with_the_top_components_in_order():
    ds = pl.run_protocol("pca", {"rule": "sanger", "k": 3, "trials": 8})
    final = ds.alignment.isel(time=-1)
    assert float(final.min()) >= 0.95, final.values
    # in order: output i is not aligned with component j != i
    weights = ds.weights / np.linalg.norm(ds.weights, axis=-1, keepdims=True)
    cross = np.abs(np.einsum("tki,ji->tkj", weights.values, ds.components.values))
    off_diagonal = cross[:, ~np.eye(3, dtype=bool)]
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

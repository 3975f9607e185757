"""Universal Hopfield networks (Millidge et al. 2022): similarity, separation, projection."""

import numpy as np
import pytest

import reference
from plasticity.errors import ConfigError
from plasticity.networks.datasets import digits
from plasticity.networks.uhn import SEPARATIONS, SIMILARITIES, UniversalHopfield, nearest_correct, retrieval

BACKENDS = ("numba", "numpy", "torch")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_retrieval_matches_reference(similarity, backend):
    rng = np.random.default_rng(0)
    memory = rng.random((12, 10))
    values = rng.standard_normal((12, 3))
    queries = memory[:4] + 0.1 * rng.standard_normal((4, 10))
    for separation in SEPARATIONS:
        net = UniversalHopfield(memory, values, similarity=similarity, separation=separation, beta=20.0, power=3, dtype="float64")
        out = net.retrieve(queries, backend=backend)
        for t, q in enumerate(queries):
            expected = reference.uhn_retrieve(memory, values, q, similarity, separation, 20.0, 3)
            np.testing.assert_allclose(out[t], expected, rtol=1e-9, atol=1e-10, err_msg=separation)
        np.testing.assert_allclose(net.scores(queries)[0], reference.uhn_similarity(queries[0], memory, similarity), rtol=1e-10)
        out32 = UniversalHopfield(memory, values, similarity=similarity, separation=separation, beta=20.0, power=3).retrieve(
            queries, backend=backend
        )
        np.testing.assert_allclose(out32, out, rtol=1e-4, atol=1e-5)


def test_hetero_association_returns_the_paired_values():
    images = digits()[:200]
    labels = np.eye(10)[np.arange(200) % 10]
    net = UniversalHopfield(images, labels, similarity="manhattan", separation="max")
    noisy = images + 0.1 * np.random.default_rng(1).standard_normal(images.shape)
    np.testing.assert_array_equal(net.retrieve(noisy).argmax(1), np.arange(200) % 10)
    assert net.projection.shape == (200, 10) and net.patterns.shape == (200, 64)


def test_nearest_pattern_criterion_fails_the_mean_image_and_other_digits():
    """A retrieval counts only when it is nearer the cued digit than any other stored digit: the
    data set's mean image is right for at most the one digit it is nearest to, another stored
    digit is never right (the old 60 D / 784 threshold passed 62% of digits for the mean image)."""
    images = digits()[:300]
    mean = np.broadcast_to(images.mean(0), images.shape)
    assert nearest_correct(mean, images).sum() <= 1
    assert not nearest_correct(np.roll(images, 1, axis=0), images).any()
    assert nearest_correct(images + 0.01, images).all()


def test_digits_defaults_retrieve_well_out_of_the_box():
    """The defaults (per-unit Manhattan similarity, softmax separation, raw images as projection)
    retrieve noisy and half-masked digits by the nearest-pattern criterion."""
    assert float(retrieval(seed=1).accuracy) >= 0.98
    assert float(retrieval(cue="mask", seed=1).accuracy) >= 0.8
    assert float(retrieval(patterns=500, seed=2).accuracy) >= 0.95


def test_paper_orderings_on_digits():
    """Millidge et al. (2022, Figs. 2-3) on 300 digits, same digits and cues for every function:
    Manhattan and Euclidean similarity retrieve more than dot product (max separation), sharp
    separation (softmax, max) more than identity, and accuracy falls as more digits are stored."""
    acc = {
        (cue, sim, sep): float(retrieval(similarity=sim, separation=sep, patterns=300, cue=cue, seed=3).accuracy)
        for cue in ("noise", "mask") for sim in SIMILARITIES for sep in ("identity", "softmax", "max")
    }
    for sim in ("euclidean", "manhattan"):
        for sep in ("softmax", "max"):
            assert acc["noise", sim, sep] >= acc["noise", "dot", sep] + 0.3
    assert acc["mask", "manhattan", "max"] >= acc["mask", "dot", "max"] + 0.3
    assert acc["mask", "euclidean", "softmax"] >= acc["mask", "dot", "softmax"] + 0.05
    for cue in ("noise", "mask"):
        for sim in SIMILARITIES:
            for sep in ("softmax", "max"):
                assert acc[cue, sim, sep] >= acc[cue, sim, "identity"] + 0.05
    few, many = (float(retrieval(separation="max", cue="mask", patterns=p, seed=3).accuracy) for p in (20, 1000))
    assert few >= many + 0.1
    assert float(retrieval(dataset="random", seed=0).accuracy) >= 0.98


def test_unnormalised_dot_separation_is_linear_attention():
    """Dot-product similarity with the unnormalised separation at gain D is V^T K q exactly."""
    rng = np.random.default_rng(2)
    keys, values, queries = rng.standard_normal((9, 6)), rng.standard_normal((9, 4)), rng.standard_normal((5, 6))
    for backend in BACKENDS:
        net = UniversalHopfield(keys, values, similarity="dot", separation="unnormalised", beta=6.0, dtype="float64")
        np.testing.assert_allclose(net.retrieve(queries, backend=backend), queries @ keys.T @ values, rtol=1e-12, atol=1e-12)


def test_protocol_is_seeded_and_backends_agree():
    a = [retrieval(patterns=60, backend=b, seed=5) for b in BACKENDS]
    for other in a[1:]:
        np.testing.assert_allclose(float(other.mean_error), float(a[0].mean_error), rtol=1e-4)
        assert float(other.accuracy) == float(a[0].accuracy)
    assert float(retrieval(patterns=60, seed=5).mean_error) == float(a[0].mean_error)
    assert retrieval(patterns=10).sizes == retrieval(patterns=30).sizes  # sweeps over patterns stack


def test_energy_is_lowest_at_stored_patterns():
    images = digits()[:30]
    net = UniversalHopfield(images, similarity="euclidean", beta=50.0)
    noisy = images + 0.3 * np.random.default_rng(0).standard_normal(images.shape)
    assert np.all(net.energy(images) < net.energy(noisy))


def test_bad_input_lists_valid_choices():
    with pytest.raises(ConfigError, match="'dot', 'euclidean', 'manhattan'"):
        UniversalHopfield(np.ones((2, 3)), similarity="cosine")
    with pytest.raises(ConfigError, match="'identity', 'softmax', 'max', 'polynomial', 'unnormalised'"):
        retrieval(separation="sparsemax")
    with pytest.raises(ConfigError, match="beta must be a number in"):
        retrieval(beta=0)
    with pytest.raises(ConfigError, match="'random', 'digits'"):
        retrieval(dataset="mnist")
    with pytest.raises(ConfigError, match="at most 1797"):
        retrieval(patterns=5000)
    with pytest.raises(ConfigError, match="one row per memory row"):
        UniversalHopfield(np.ones((3, 4)), np.ones((2, 4)))

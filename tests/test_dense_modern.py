"""Dense associative memories (Krotov-Hopfield, Demircigil) and modern Hopfield networks (Ramsauer)."""

import numpy as np
import pytest

import reference
from plasticity.analysis import energy_trajectory
from plasticity.errors import ConfigError
from plasticity.networks._assoc import order_seeds, sweep_orders, trial_generators
from plasticity.networks.dense import DenseAssociativeMemory
from plasticity.networks.dense import capacity as dense_capacity
from plasticity.networks.hopfield import HopfieldNetwork
from plasticity.networks.modern import ModernHopfield, retrieval

BACKENDS = ("numba", "numpy", "torch")
FORMS = [dict(power=2), dict(power=3), dict(power=4), dict(separation="exp")]


def random_patterns(count, n, seed=0):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(count, n))


def flipped(patterns, fraction, seed=1):
    rng = np.random.default_rng(seed)
    return patterns * np.where(rng.random(patterns.shape) < fraction, -1.0, 1.0)


def ref_power(form):
    return None if form.get("separation") == "exp" else form["power"]


@pytest.mark.parametrize("form", FORMS, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_async_matches_reference(form, backend):
    x = random_patterns(12, 20)
    cues = flipped(np.repeat(x[:2], 2, axis=0), 0.3)
    mem = DenseAssociativeMemory(x, **form)
    out = mem.retrieve(cues, update="async", seed=3, max_sweeps=30, backend=backend)
    seeds = order_seeds(trial_generators(3, cues.shape[0]))
    for t, cue in enumerate(cues):
        order = lambda sweep: sweep_orders(seeds[t : t + 1], sweep, cue.size)[0]  # noqa: E731
        state, sweeps, converged = reference.dense_async(x, cue, order, 30, ref_power(form))
        np.testing.assert_array_equal(out.states[t], state)
        assert (out.sweeps[t], out.converged[t]) == (sweeps, converged)


@pytest.mark.parametrize("form", FORMS, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_sync_step_matches_reference(form, backend):
    x = random_patterns(12, 20, seed=4)
    cues = flipped(np.repeat(x[:2], 2, axis=0), 0.3, seed=2)
    out = DenseAssociativeMemory(x, **form).retrieve(cues, update="sync", max_sweeps=1, backend=backend)
    for t, cue in enumerate(cues):
        np.testing.assert_array_equal(out.states[t], reference.dense_sync_step(x, cue, ref_power(form)))


def test_dense_power_two_is_the_hebbian_hopfield_network():
    x = random_patterns(15, 60, seed=1)
    cues = flipped(np.repeat(x[:3], 3, axis=0), 0.25)
    for update in ("async", "sync"):
        dense = DenseAssociativeMemory(x, power=2).retrieve(cues, update=update, seed=5)
        classic = HopfieldNetwork(x, "hebbian").retrieve(cues, update=update, seed=5)
        np.testing.assert_array_equal(dense.states, classic.states)
        np.testing.assert_array_equal(dense.sweeps, classic.sweeps)


@pytest.mark.parametrize("update", ["async", "sync"])
def test_dense_capacity_same_on_every_backend(update):
    for form in (dict(power=3), dict(separation="exp")):
        runs = [dense_capacity(n=40, patterns=60, flip=0.2, trials=4, update=update, backend=b, seed=2, **form) for b in BACKENDS]
        for other in runs[1:]:
            for name in ("overlap", "sweeps", "converged", "cycle"):
                np.testing.assert_array_equal(runs[0][name].values, other[name].values)


def test_dense_energy_never_increases_under_async_updates():
    x = random_patterns(60, 40, seed=3)
    cues = flipped(np.repeat(x[:3], 3, axis=0), 0.35)
    for form in FORMS:
        mem = DenseAssociativeMemory(x, **form)
        out = mem.retrieve(cues, seed=2, record=True)
        energy = energy_trajectory(mem, out.trajectory)
        assert float(energy.diff("sweep").max()) <= 1e-9 * float(abs(energy).max()), form


def test_dense_n3_retrieves_150_patterns_at_n100_where_n2_fails():
    """Krotov and Hopfield (2016): capacity ~ N^(n-1); at N = 100, 150 patterns need n >= 3."""
    cubic = dense_capacity(n=100, power=3, patterns=150, flip=0.1, trials=50, seed=1)
    quadratic = dense_capacity(n=100, power=2, patterns=150, flip=0.1, trials=50, seed=1)
    assert float(cubic.success.mean()) >= 0.96
    assert float(quadratic.success.mean()) <= 0.05
    exponential = dense_capacity(n=100, separation="exp", patterns=1000, flip=0.1, trials=10, seed=1)
    assert bool(exponential.success.all())


def test_dense_bad_input():
    with pytest.raises(ConfigError, match="'polynomial', 'exp'"):
        DenseAssociativeMemory(random_patterns(2, 8), separation="relu")
    with pytest.raises(ConfigError, match=r"power must be an integer in \[2, 30\]; got 1"):
        DenseAssociativeMemory(random_patterns(2, 8), power=1)
    with pytest.raises(ConfigError, match=r"-1 and \+1"):
        DenseAssociativeMemory(np.full((2, 8), 0.5))
    with pytest.raises(ConfigError, match="zero patterns"):
        dense_capacity(n=100, load=0.001)
    with pytest.raises(ConfigError, match=r"load must be a number in \(0, 1000\]; got 0.0"):
        dense_capacity(n=100, load=0.0)


@pytest.mark.parametrize("update", ["async", "sync"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_dense_engine_storage_gives_what_the_rows_fast_path_gives(backend, update):
    """A user rule with the hebbian rule's mathematics runs on the engine (one memory unit one-hot
    per presented pattern); the library's hebbian takes the dense.storage.rows fast path: the
    stored patterns and every recall decision are equal exactly."""
    user = {"equations": ["w += y_post * x_pre"], "name": "my hebb"}
    params = dict(n=30, patterns=40, flip=0.15, update=update, trials=4, max_sweeps=20, seed=2, backend=backend)
    engine, fast = dense_capacity(rule=user, **params), dense_capacity(rule="hebbian", **params)
    for name in ("overlap", "sweeps", "converged", "cycle", "energy"):
        np.testing.assert_array_equal(engine[name].values, fast[name].values, err_msg=name)


def test_dense_storage_rule_errors_name_what_the_memory_offers():
    from plasticity.errors import EquationError

    with pytest.raises(EquationError, match="unknown variable z_pre.*a dense memory offers x_pre"):
        dense_capacity(n=20, rule={"equations": ["w += z_pre * y_post"]})


# ----------------------------------------------------------------------------- modern Hopfield


@pytest.mark.parametrize("backend", BACKENDS)
def test_modern_update_matches_reference(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 16))
    cues = x[:4] + 0.5 * rng.standard_normal((4, 16))
    net = ModernHopfield(x, beta=0.7, dtype="float64")
    out = net.retrieve(cues, steps=3, backend=backend)
    for t, cue in enumerate(cues):
        np.testing.assert_allclose(out[t], reference.modern_update(x, cue, 0.7, steps=3), rtol=1e-10, atol=1e-12)
    out32 = ModernHopfield(x, beta=0.7).retrieve(cues, steps=3, backend=backend)
    np.testing.assert_allclose(out32, out, rtol=1e-4, atol=1e-5)


def test_modern_retrieval_protocol_same_on_every_backend():
    runs = [retrieval(n=32, patterns=200, trials=20, beta=1.0, backend=b, seed=4) for b in BACKENDS]
    for other in runs[1:]:
        np.testing.assert_allclose(runs[0].overlap.values, other.overlap.values, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(runs[0].retrieved.values, other.retrieved.values)


def test_mixture_states_are_not_counted_as_retrieved():
    """A trial that ends in a mixture of patterns (equal overlaps) reports retrieved = -1, not
    whichever pattern rounding favours, so dtypes and backends agree on it."""
    runs = [retrieval(n=16, patterns=20, trials=8, backend="numpy", seed=0, dtype=d) for d in ("float32", "float64")]
    for ds in runs:
        mixture = ds.retrieved.values == -1
        assert mixture.any() and not ds.correct.values[mixture].any()
        assert np.all(ds.overlap.values[mixture] < 0.9)
    np.testing.assert_array_equal(runs[0].retrieved.values, runs[1].retrieved.values)


def test_modern_one_step_retrieval_from_flipped_cues():
    """Ramsauer et al. (2020): with large beta, well-separated patterns are retrieved in one update."""
    ds = retrieval(n=64, patterns=1000, beta=4.0, cue="flip", level=0.2, steps=1, trials=300, seed=0)
    assert float((ds.overlap >= 0.99).mean()) >= 0.99
    assert float(ds.correct.mean()) >= 0.99


def test_modern_energy_decreases_and_metastable_states():
    rng = np.random.default_rng(1)
    x = np.sign(rng.standard_normal((50, 32)))
    cues = x[:10] * np.where(rng.random((10, 32)) < 0.3, -1, 1)
    for beta in (0.05, 0.3, 2.0):
        net = ModernHopfield(x, beta=beta, dtype="float64")
        state = cues
        for _ in range(4):
            new = net.retrieve(state, steps=1)
            assert np.all(net.energy(new) <= net.energy(state) + 1e-9)
            state = new
    small = ModernHopfield(x, beta=1e-4, dtype="float64")
    mixed = small.retrieve(cues, steps=5)
    np.testing.assert_allclose(mixed, np.broadcast_to(x.mean(0), mixed.shape), atol=1e-2)
    assert small.metastable(mixed).all()
    big = ModernHopfield(x, beta=4.0)
    assert not big.metastable(big.retrieve(x[:5])).any()
    assert big.separation().shape == (50,) and np.all(big.separation() > 0)
    np.testing.assert_allclose(big.weights(x[:3]).sum(1), 1.0)


def test_modern_cues_and_bad_input():
    for cue, level in (("mask", 0.5), ("noise", 0.5)):
        ds = retrieval(n=64, patterns=100, cue=cue, level=level, trials=20)
        assert float(ds.correct.mean()) >= 0.95
    with pytest.raises(ConfigError, match="beta must be a finite number > 0"):
        ModernHopfield(np.ones((2, 3)), beta=0.0)
    with pytest.raises(ConfigError, match="beta"):
        retrieval(beta=-1.0)
    with pytest.raises(ConfigError, match="'flip', 'mask', 'noise'"):
        retrieval(cue="blur")

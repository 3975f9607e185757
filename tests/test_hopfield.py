"""Classical Hopfield networks: storage rules, async/sync dynamics, backends, capacity oracles."""

import numpy as np
import pytest
import xarray as xr

import reference
from plasticity.analysis import critical_load, energy_trajectory
from plasticity.errors import BackendError, ConfigError
from plasticity.networks._assoc import order_seeds, sweep_orders, trial_generators
from plasticity.networks.hopfield import RULES, HopfieldNetwork, capacity, store_weights
from plasticity.protocols import get_protocol, list_protocols, run_protocol

BACKENDS = ("numba", "numpy", "torch")


def random_patterns(count, n, seed=0):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(count, n))


def flipped(patterns, fraction, seed=1):
    rng = np.random.default_rng(seed)
    return patterns * np.where(rng.random(patterns.shape) < fraction, -1.0, 1.0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_storage_rules_match_reference(backend):
    x = random_patterns(5, 16)
    expected = {
        "hebbian": reference.hopfield_hebbian_weights(x),
        "storkey": reference.hopfield_storkey_weights(x),
        "pseudoinverse": reference.hopfield_pseudoinverse_weights(x),
    }
    for rule in RULES:
        w = store_weights(x, rule, backend=backend)
        np.testing.assert_allclose(w, expected[rule], atol=1e-12, err_msg=rule)
        assert np.all(np.diag(w) == 0) and np.allclose(w, w.T)
        np.testing.assert_allclose(HopfieldNetwork(x, rule).weights, expected[rule], atol=1e-12)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_async_recall_matches_reference(rule, backend):
    x = random_patterns(6, 40)
    cues = flipped(np.repeat(x[:3], 2, axis=0), 0.25)
    net = HopfieldNetwork(x, rule, dtype="float64")
    out = net.retrieve(cues, update="async", max_sweeps=50, seed=7, backend=backend)
    seeds = order_seeds(trial_generators(7, cues.shape[0]))
    for t, cue in enumerate(cues):
        order = lambda sweep: sweep_orders(seeds[t : t + 1], sweep, cue.size)[0]  # noqa: E731
        state, sweeps, converged = reference.hopfield_async(net.weights, cue, order, 50)
        np.testing.assert_array_equal(out.states[t], state)
        assert out.sweeps[t] == sweeps and out.converged[t] == converged
    np.testing.assert_allclose(out.energy, net.energy(out.states), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_recall_matches_reference(rule, backend):
    x = random_patterns(8, 40, seed=3)
    cues = flipped(np.repeat(x[:3], 2, axis=0), 0.3, seed=4)
    net = HopfieldNetwork(x, rule, dtype="float64")
    out = net.retrieve(cues, update="sync", max_sweeps=30, backend=backend)
    for t, cue in enumerate(cues):
        state, steps, converged, cycle = reference.hopfield_sync(net.weights, cue, 30)
        np.testing.assert_array_equal(out.states[t], state)
        assert (out.sweeps[t], out.converged[t], out.cycle[t]) == (steps, converged, cycle)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_detects_two_cycle(backend):
    net = HopfieldNetwork([[1.0, -1.0]])  # w_12 = -1/2: (1, 1) -> (-1, -1) -> (1, 1)
    out = net.retrieve([[1.0, 1.0], [1.0, -1.0]], update="sync", backend=backend)
    np.testing.assert_array_equal(out.cycle, [True, False])
    np.testing.assert_array_equal(out.converged, [False, True])
    np.testing.assert_array_equal(out.sweeps, [2, 0])


@pytest.mark.parametrize("update", ["async", "sync"])
@pytest.mark.parametrize("rule", RULES)
def test_capacity_protocol_same_on_every_backend(rule, update):
    # hebbian-async runs from the patterns on numba/numpy and from W on torch: the same decisions exactly
    params = dict(n=64, rule=rule, load=0.2, flip=0.15, update=update, trials=6, max_sweeps=20)
    runs = [capacity(backend=b, seed=11, **params) for b in BACKENDS]
    for other in runs[1:]:
        for name in ("overlap", "success", "sweeps", "converged", "cycle"):
            np.testing.assert_array_equal(runs[0][name].values, other[name].values, err_msg=name)
        np.testing.assert_allclose(runs[0].energy.values, other.energy.values, rtol=1e-5)


def test_hebbian_recall_from_patterns_equals_recall_from_weights():
    from plasticity.networks.hopfield import _couplings, _hebbian_recall, _recall

    rng = np.random.default_rng(8)
    xs = rng.choice([-1.0, 1.0], size=(5, 30, 100)).astype(np.float32)
    cues = xs[:, 0] * np.where(rng.random((5, 100)) < 0.2, -1.0, 1.0)
    for backend in ("numba", "numpy"):
        a = _hebbian_recall(xs, cues, trial_generators(2, 5), max_sweeps=50, backend=backend)
        j, scale = _couplings(xs, "hebbian", backend, np.dtype(np.float32))
        b = _recall(j, scale, cues, trial_generators(2, 5), update="async", max_sweeps=50, backend=backend)
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_array_equal(a.sweeps, b.sweeps)
        np.testing.assert_array_equal(a.flips, b.flips)
        np.testing.assert_allclose(a.energy, b.energy, rtol=1e-12)


def test_capacity_protocol_is_seeded_and_per_trial():
    a = capacity(n=80, load=0.2, flip=0.1, trials=5, seed=3)
    b = capacity(n=80, load=0.2, flip=0.1, trials=5, seed=3)
    c = capacity(n=80, load=0.2, flip=0.1, trials=8, seed=3)
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(a.overlap.values, c.overlap.values[:5])
    seq = capacity(n=80, load=0.2, flip=0.1, trials=5, seed=np.random.SeedSequence(3))
    np.testing.assert_array_equal(a.overlap.values, seq.overlap.values)
    assert set(a.dims) == {"trial"} and int(a.num_patterns) == 16
    assert int(capacity(n=80, patterns=3, trials=2).num_patterns) == 3


def test_energy_never_increases_under_async_updates():
    x = random_patterns(30, 100, seed=2)
    cues = flipped(np.repeat(x[:4], 5, axis=0), 0.3, seed=5)
    for rule in RULES:
        net = HopfieldNetwork(x, rule)
        out = net.retrieve(cues, update="async", seed=1, record=True)
        energy = energy_trajectory(net, out.trajectory)
        assert float(energy.diff("sweep").max()) <= 1e-9, rule
        assert out.trajectory.shape[0] == out.sweeps.max() + 2


def test_energy_never_increases_per_flip_on_reference_dynamics():
    # the fast path flips exactly like the reference (tested above); per flip, E changes by -2|h_i| <= 0
    x = random_patterns(12, 50, seed=9)
    net = HopfieldNetwork(x, "hebbian", dtype="float64")
    s = flipped(x[:1], 0.4, seed=3)[0]
    rng = np.random.default_rng(0)
    energies = [net.energy(s)[0]]
    for _ in range(5):
        for i in rng.permutation(50):
            h = net.weights[i] @ s
            s[i] = 1.0 if h > 0 else (-1.0 if h < 0 else s[i])
            energies.append(net.energy(s)[0])
    assert np.all(np.diff(energies) <= 1e-12)


def test_pseudoinverse_keeps_every_pattern_fixed_up_to_half_load():
    for load in (0.1, 0.3, 0.5):
        x = random_patterns(int(load * 200), 200, seed=int(load * 10))
        net = HopfieldNetwork(x, "pseudoinverse")
        assert np.all(np.sign(x @ net.weights) == x), load
        out = net.retrieve(x, update="async")
        assert np.all(out.sweeps == 0) and np.all(out.converged)
        out = net.retrieve(x, update="sync")
        np.testing.assert_array_equal(out.states, x)
    ds = capacity(n=200, rule="pseudoinverse", load=0.5, trials=10, seed=4)
    assert bool(ds.success.all()) and int(ds.sweeps.max()) == 0


def test_storkey_stores_more_than_hebbian():
    # at N = 200 the Hebbian 50% point is near load 0.19; Storkey still retrieves at 0.3
    for load in (0.25, 0.3):
        hebb = capacity(n=200, rule="hebbian", load=load, trials=40, seed=5).success.mean()
        stork = capacity(n=200, rule="storkey", load=load, trials=40, seed=5).success.mean()
        assert float(stork) >= 0.9 and float(hebb) <= 0.3, (load, float(hebb), float(stork))


@pytest.mark.slow
def test_hebbian_async_capacity_at_n_1000():
    """Amit-Gutfreund-Sompolinsky: alpha_c = 0.138 for N -> infinity; at N = 1000 the 50% point of
    'overlap >= 0.95 from the pattern itself' lies higher, between 0.14 and 0.18."""
    loads = np.round(np.arange(0.10, 0.205, 0.02), 2)
    runs = [capacity(n=1000, rule="hebbian", load=float(a), flip=0.0, trials=50, seed=100 + k) for k, a in enumerate(loads)]
    success = xr.concat([r.success for r in runs], dim=xr.DataArray(loads, dims="load", name="load"))
    curve = success.mean("trial")
    assert float(curve.sel(load=0.10)) >= 0.9
    assert float(curve.sel(load=0.20)) <= 0.1
    crit = critical_load(success, level=0.5, n_boot=200)
    assert 0.14 <= float(crit.critical_load) <= 0.18
    assert float(crit.ci_low) <= float(crit.critical_load) <= float(crit.ci_high)


def test_bad_input_gets_clear_errors():
    with pytest.raises(ConfigError, match=r"-1 and \+1"):
        HopfieldNetwork([[1, 0, -1]])
    with pytest.raises(ConfigError, match="hebbian.*storkey.*pseudoinverse"):
        HopfieldNetwork([[1, -1, 1]], rule="oja")
    with pytest.raises(ConfigError, match="zero patterns"):
        capacity(n=100, load=0.001)
    with pytest.raises(ConfigError, match="'async', 'sync'"):
        capacity(n=100, update="parallel")
    with pytest.raises(BackendError, match="numba, numpy, torch"):
        capacity(n=100, backend="jax")
    net = HopfieldNetwork(random_patterns(2, 10))
    with pytest.raises(ConfigError, match="10 units"):
        net.retrieve(random_patterns(1, 12))
    with pytest.raises(ConfigError, match=r"-1 and \+1"):
        net.energy(np.zeros((1, 10)))


def test_protocols_registered_and_run_through_registry():
    names = list_protocols()
    for name in ("hopfield.capacity", "dense.capacity", "modern.retrieval", "uhn.retrieval"):
        assert name in names
    assert set(get_protocol("hopfield.capacity").defaults) == {
        "n", "rule", "load", "patterns", "flip", "update", "max_sweeps", "trials", "threshold",
    }
    ds = run_protocol("hopfield.capacity", {"n": 50, "trials": 3, "load": 0.1}, backend="numpy", seed=2)
    assert ds.attrs["protocol"] == "hopfield.capacity" and ds.attrs["backend"] == "numpy"
    with pytest.raises(ConfigError, match="valid parameters"):
        run_protocol("hopfield.capacity", {"size": 3}, backend="numpy")


def test_patterns_are_plain_arrays():
    x = random_patterns(3, 20)
    net = HopfieldNetwork(x)
    assert isinstance(net.patterns, np.ndarray)
    np.testing.assert_array_equal(net.patterns, x)
    net.patterns[0, 0] *= -1  # a copy: the memory is unchanged
    np.testing.assert_array_equal(net.patterns, x)
    np.testing.assert_allclose(net.overlaps(x).diagonal(), 1.0)


@pytest.mark.gpu
def test_associative_memories_on_cuda_match_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from plasticity.networks.dense import capacity as dense_capacity
    from plasticity.networks.modern import retrieval as modern_retrieval
    from plasticity.networks.uhn import retrieval as uhn_retrieval

    for update in ("async", "sync"):
        cpu = capacity(n=64, rule="storkey", load=0.2, flip=0.1, update=update, trials=4, backend="numpy", seed=1)
        gpu = capacity(n=64, rule="storkey", load=0.2, flip=0.1, update=update, trials=4, backend="torch", device="cuda", seed=1)
        np.testing.assert_array_equal(cpu.overlap.values, gpu.overlap.values)
    cpu = dense_capacity(n=40, patterns=60, update="sync", trials=4, backend="numpy", seed=1)
    gpu = dense_capacity(n=40, patterns=60, update="sync", trials=4, backend="torch", device="cuda", seed=1)
    np.testing.assert_array_equal(cpu.overlap.values, gpu.overlap.values)
    cpu = modern_retrieval(n=32, patterns=100, trials=10, backend="numpy", seed=1)
    gpu = modern_retrieval(n=32, patterns=100, trials=10, backend="torch", device="cuda", seed=1)
    np.testing.assert_allclose(cpu.overlap.values, gpu.overlap.values, rtol=1e-4, atol=1e-5)
    cpu = uhn_retrieval(patterns=50, backend="numpy", seed=1)
    gpu = uhn_retrieval(patterns=50, backend="torch", device="cuda", seed=1)
    assert float(cpu.accuracy) == float(gpu.accuracy)

"""Classical Hopfield networks: storage rules, async/sync dynamics, backends, capacity oracles."""

import numpy as np
import pytest
import xarray as xr

import reference
from plasticity.analysis import critical_load, energy_trajectory
from plasticity.errors import BackendError, ConfigError
from plasticity.networks._assoc import order_seeds, sweep_orders, trial_generators
from plasticity.networks.hopfield import RULES, UPDATES, HopfieldNetwork, capacity, store_weights
from plasticity.protocols import get_protocol, list_protocols, run_protocol

BACKENDS = ("numba", "numpy", "torch")


def random_patterns(count, n, seed=0):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(count, n))


def flipped(patterns, fraction, seed=1):
    rng = np.random.default_rng(seed)
    return patterns * np.where(rng.random(patterns.shape) < fraction, -1.0, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_storage_rules_match_reference(backend):
    x = random_patterns(5, 16)
    expected = {
        # the library's hebbian storage is hebb with eta = 1: the integer couplings J = N W
        "hebbian": reference.hopfield_hebbian_weights(x) * x.shape[1],
        "storkey": reference.hopfield_storkey_weights(x),
        "pseudoinverse": reference.hopfield_pseudoinverse_weights(x),
    }
    for rule in RULES:
        w = store_weights(x, rule, backend=backend)
        np.testing.assert_allclose(w, expected[rule], atol=1e-12, err_msg=rule)
        assert np.all(np.diag(w) == 0) and np.allclose(w, w.T)
        np.testing.assert_allclose(HopfieldNetwork(x, rule, backend=backend).weights, expected[rule], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["hebbian", "pseudoinverse"])
def test_batch_storage_fast_paths_equal_the_engine_online_storage(rule, backend):
    """hopfield.storage.outer_product and hopfield.storage.pseudoinverse against their twin, the rule's equations
    run pattern by pattern on the engine: exactly for integer Hebbian couplings, to rounding for
    Greville's recursion."""
    from plasticity.backends.runtime import fast_path_replacing, resolve
    from plasticity.networks.hopfield import STORE_STAGES, memory_network
    from plasticity.rules import get_rule
    from plasticity.simulation import Simulation

    xs = np.stack([random_patterns(6, 20, seed=s) for s in range(3)])
    runtime = resolve(backend, "cpu" if backend == "torch" else None, "float64")
    batch = fast_path_replacing("hopfield.storage", get_rule(rule), backend)
    fast = runtime.host(batch(runtime.array(xs), 2, "float64"))
    sim = Simulation(memory_network(20, rule), trials=3, backend=backend, dtype="float64")
    presented = np.tile(xs.transpose(1, 0, 2), (2, 1, 1))
    sim.advance(12, inputs={"units.x": presented, "units.y": presented}, stages=STORE_STAGES)
    if rule == "hebbian":
        np.testing.assert_array_equal(fast, sim.get("couplings.w"))
    else:
        np.testing.assert_allclose(fast, sim.get("couplings.w"), atol=1e-10)


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
    """hopfield.recall.hebbian_async against its twin, hopfield.recall.async on the couplings of the engine's storage."""
    from plasticity.backends.runtime import fast_path
    from plasticity.networks.hopfield import store_weights

    rng = np.random.default_rng(8)
    xs = rng.choice([-1.0, 1.0], size=(5, 30, 100)).astype(np.float32)
    cues = xs[:, 0] * np.where(rng.random((5, 100)) < 0.2, -1.0, 1.0)
    couplings = np.stack([store_weights(x, "hebbian", backend="numpy") for x in xs]).astype(np.float32)
    for backend in ("numba", "numpy"):
        seeds = order_seeds(trial_generators(2, 5))
        a = fast_path("hopfield.recall.hebbian_async", backend)(xs, cues, seeds, 50)
        b = fast_path("hopfield.recall.async", backend)(couplings, cues.astype(np.float32), seeds, 50, False)
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
    with pytest.raises(ConfigError, match="unknown rule 'hebb1an'; built-in rules: .*hebbian.*pseudoinverse.*storkey"):
        HopfieldNetwork([[1, -1, 1]], rule="hebb1an")
    with pytest.raises(ConfigError, match="zero patterns"):
        capacity(n=100, load=0.001)
    with pytest.raises(ConfigError, match="update must be one of 'async', 'sync'; got 'parallel'"):
        capacity(n=100, update="parallel")
    with pytest.raises(ConfigError, match="load must be a number in"):
        capacity(n=100, load=float("nan"))
    with pytest.raises(BackendError, match="numpy, numba, torch"):
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
        "n", "rule", "epochs", "load", "patterns", "flip", "update", "max_sweeps", "trials", "threshold",
        "common_patterns",
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


# ----------------------------------------------------------------------------- any rule stores, on the engine

DELTA_3Q = {
    "equations": ["r_post = x_post - I_post", "u_pre = x_pre", "w += eta * r_post * u_pre"],
    "params": {"eta": 0.01},
    "form": "strict",
    "name": "delta3q",
}


def test_a_user_strict_three_equation_rule_stores_where_hebbian_fails():
    """A strict 3Q delta rule (one Kaczmarz step per pattern at eta = 1/N) keeps 30 patterns of
    N = 100 retrievable, where Hebbian storage (critical load ~0.14) retrieves none."""
    from plasticity.rules import resolve_rule

    params = dict(n=100, load=0.3, flip=0.05, trials=20, seed=1, backend="numpy")
    table = capacity(rule=DELTA_3Q, **params)
    hebbian = capacity(rule="hebbian", **params)
    assert float(table.success.mean()) >= 0.9 and float(hebbian.success.mean()) <= 0.1
    assert table.attrs["rule"] == "delta3q"
    as_rule = capacity(rule=resolve_rule(DELTA_3Q), **params)
    np.testing.assert_array_equal(table.overlap.values, as_rule.overlap.values)


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_the_engine_path_gives_what_the_hebbian_fast_paths_give(backend, update):
    """A user rule with Hebbian storage's mathematics but its own equations runs on the engine
    (online storage, engine or async recall); the library's hebbian runs on the fast paths (batch
    storage, recall from the patterns). Integer couplings: the same decisions exactly."""
    user = {"equations": ["w += y_post * x_pre"], "name": "my hebb"}
    params = dict(n=60, load=0.15, flip=0.2, update=update, trials=6, max_sweeps=30, seed=3, backend=backend)
    engine, fast = capacity(rule=user, **params), capacity(rule="hebbian", **params)
    for name in ("overlap", "sweeps", "converged", "cycle", "energy"):
        np.testing.assert_array_equal(engine[name].values, fast[name].values, err_msg=name)


def test_a_storage_rule_the_memory_cannot_run_is_an_error_before_any_pattern_is_stored(monkeypatch):
    from plasticity.errors import EquationError
    from plasticity.networks import hopfield
    from plasticity.rules import resolve_rule

    monkeypatch.setattr(hopfield, "_random_patterns", lambda *a: pytest.fail("patterns were drawn"))
    with pytest.raises(EquationError, match=r"column 14: unknown variable target_post.*a memory's units offer x and y"):
        capacity(n=20, rule={"equations": ["w += x_pre * target_post"]})
    with pytest.raises(EquationError, match="no equation for the couplings w, so it cannot store"):
        capacity(n=20, rule={"equations": ["e_post = x_post"]})
    with pytest.raises(EquationError, match=r"column 13: syntax error"):
        run_protocol("hopfield.capacity", {"n": 20, "rule": {"equations": ["w += x_pre *"]}}, backend="numpy")
    with pytest.raises(ConfigError, match="rule has unknown key 'equation'"):
        capacity(n=20, rule={"equation": ["w += x_pre"]})
    with pytest.raises(EquationError, match="cannot store"):
        HopfieldNetwork(random_patterns(2, 10), resolve_rule({"equations": ["theta_post = x_post"]}))


def test_the_storage_rules_are_listed_with_equations_reference_and_cost(capsys):
    from plasticity.cli import main

    assert main(["rules"]) == 0
    text = capsys.readouterr().out
    for name in RULES:
        assert f"\n{name}\n" in f"\n{text}"
    assert "I_post - w * x_pre" in text and "Storkey (1997)" in text and "Greville (1960)" in text


def test_a_strict_rule_capacity_curve_is_one_sweep(tmp_path):
    from pathlib import Path

    from plasticity.experiment import load_experiment
    from plasticity.sweep import run_sweep
    from plasticity.storage import open_store

    path = Path(__file__).resolve().parent.parent / "examples" / "storage_3q.toml"
    overrides = ["params.n=40", "params.trials=3", "backend='numpy'", "sweep.load=[0.1, 0.3]"]
    summary = run_sweep(load_experiment(path, overrides), tmp_path / "s.zarr", workers=0, progress=False)
    assert summary.done == 2 and not summary.failed
    store = open_store(tmp_path / "s.zarr")
    assert store.success.dims == ("load", "repeat", "trial") and "delta3q" in store.attrs["params"]

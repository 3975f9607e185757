"""Learning capacity of any rule: presenting stored data sets, the learn.capacity protocol, and its
oracles (Cover's count of dichotomies, Novikoff's mistake bound)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from plasticity.analysis import cover_curve, cover_probability, learning_cost
from plasticity.errors import ConfigError
from plasticity.network import Network
from plasticity.networks.learning import allowed_wrong, fields, learning_data, learning_network, train, wrong_counts
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import run_protocol
from plasticity.rule import Rule
from plasticity.rules import get_rule
from plasticity.simulation import Simulation

from tests import reference


# presenting a data set ---------------------------------------------------------------------------

ITEMS = 5
#: w = w * base + x: after an epoch w holds the items in the order shown, as digits in base ITEMS + 1.
ORDER_RULE = Rule(["w = w * base + x_pre"], params={"base": ITEMS + 1.0}, name="order")


def _order_simulation(trials: int, seed: int = 3, backend: str = "numpy") -> Simulation:
    source = Population(1, init={"x": 0.0}, name="input")
    sink = Population(1, init={"target": 0.0}, name="output")
    network = Network([source, sink], [Projection(source, sink, ORDER_RULE, source="x", init={"w": 0.0}, name="weights")])
    return Simulation(network, trials=trials, backend=backend, seed=seed, dtype="float64")


def _orders(simulation: Simulation) -> np.ndarray:
    """The items of the last epoch in the order each trial saw them (and reset w)."""
    code = simulation.get("weights.w")[:, 0, 0].astype(np.int64)
    digits = [(code // (ITEMS + 1) ** k) % (ITEMS + 1) for k in reversed(range(ITEMS))]
    simulation.set("weights.w", 0.0)
    return np.stack(digits, axis=1)


def test_present_shows_every_item_once_in_order_or_shuffled_per_trial(backend="numpy"):
    items = np.arange(1.0, ITEMS + 1)[:, None]  # (items, units), the same for every trial
    simulation = _order_simulation(12, backend=backend)
    simulation.present({"input.x": items})
    assert (_orders(simulation) == np.arange(1, ITEMS + 1)).all()
    simulation.present({"input.x": items}, order="shuffled")
    first = _orders(simulation)
    assert (np.sort(first, axis=1) == np.arange(1, ITEMS + 1)).all()  # a permutation in every trial
    assert len({tuple(row) for row in first}) > 1  # each trial its own order
    simulation.present({"input.x": items}, order="shuffled")
    assert (_orders(simulation) != first).any()  # a new order every epoch
    again = _order_simulation(12, backend=backend)
    again.present({"input.x": items})
    _orders(again)
    again.present({"input.x": items}, order="shuffled")
    assert (_orders(again) == first).all()  # drawn from the run's seed


def test_present_per_trial_data_and_stopped_trials():
    simulation = _order_simulation(3)
    data = np.arange(1.0, 1 + 3 * ITEMS).reshape(3, ITEMS, 1) % (ITEMS + 1)
    data[data == 0] = 1.0
    simulation.set("weights.w", 7.0)
    updates = simulation.present({"input.x": data}, learning=np.array([True, False, True]), count_updates=True)
    w = simulation.get("weights.w")[:, 0, 0]
    assert w[1] == 7.0  # stopped: its weights as they were
    assert list(updates) == [ITEMS, 0, ITEMS]
    expected = 7.0
    for x in data[0, :, 0]:
        expected = expected * (ITEMS + 1) + x
    assert w[0] == expected


def test_present_refuses_bad_data_before_running():
    simulation = _order_simulation(2)
    with pytest.raises(ConfigError, match="input.x"):
        simulation.present({"input.x": np.ones((2, 3, 4))})  # items of 4 units, the population has 1
    with pytest.raises(ConfigError, match="output.target.*items"):
        simulation.present({"input.x": np.ones((3, 1)), "output.target": np.ones((4, 1))})
    with pytest.raises(ConfigError, match="cannot present data to 'input.z'"):
        simulation.present({"input.z": np.ones((3, 1))})
    with pytest.raises(ConfigError, match="order"):
        simulation.present({"input.x": np.ones((3, 1))}, order="random")
    with pytest.raises(ConfigError, match="learning"):
        simulation.present({"input.x": np.ones((3, 1))}, learning=np.ones(3, bool))
    assert simulation.steps_done == 0


def test_compiled_presentation_equals_steps_taken_one_by_one():
    """numba runs presented data as compiled chunks (run_presented) once its program is worth
    compiling or cached; the result is the same as steps taken one by one from Python."""
    from plasticity.backends.numba_backend import COMPILE_AFTER_SECONDS

    # the network and sizes of the Cover test below, which then finds the program compiled
    patterns, targets = learning_data("perceptron", 50, 1, 75, "binary", 0.1, False, 20, np.random.default_rng(8))
    results, simulations = [], []
    for compiled in (False, True):
        simulation = Simulation(learning_network(get_rule("perceptron"), "perceptron", 50, 1), trials=20, seed=2)
        if compiled:
            simulation.engine.stepped_seconds = COMPILE_AFTER_SECONDS
        else:
            simulation.engine.run_presented = lambda *args: None  # the step-by-step path
        results.append(train(simulation, patterns, targets, epochs=20, criterion=1.0, order="shuffled"))
        simulations.append(simulation)
    assert simulations[1].engine.compiled_steps == simulations[1].steps_done > 0
    assert simulations[0].engine.compiled_steps == 0
    for key in ("met", "epoch", "updates"):
        assert np.array_equal(results[0][key], results[1][key], equal_nan=True), key
    assert 0 < results[1]["met"].sum() < 20  # epochs with trials left out (compiled: skipped; stepped: put back)
    for key in simulations[0].shapes:  # the whole state, populations included; integers: exact
        assert np.array_equal(simulations[0].get(key), simulations[1].get(key)), key


def test_compiled_update_counts_see_what_the_weights_keep():
    """A compiled run counts a trial's update when its rule's kernel wrote a weight other than the old
    one (marked as it writes), as steps taken one by one find by comparing the weights: an increment
    lost to rounding is no update."""
    from plasticity.backends.numba_backend import COMPILE_AFTER_SECONDS

    data = np.ones((3, 4, 8))  # trials, items, inputs
    for eta, expected in ((1.0, [0, 0, 4]), (16.0, [4, 4, 4])):  # float32 steps of 16 at 2**27: +1 rounds away
        counts = []
        for compiled in (False, True):
            rule = Rule(["w += eta * x_pre"], params={"eta": eta}, name="drift")
            simulation = Simulation(learning_network(rule, "perceptron", 8, 1), trials=3, seed=2)
            assert simulation.engine._plasticity["weights"].counts
            weights = np.full((3, 1, 8), 2.0**27, np.float32)
            weights[2, 0, 3] = 1.0  # changes by any increment
            simulation.set("weights.w", weights)
            if compiled:
                simulation.engine.stepped_seconds = COMPILE_AFTER_SECONDS
            else:
                simulation.engine.run_presented = lambda *args: None  # the step-by-step path
            counts.append(list(simulation.present({"input.x": data}, count_updates=True)))
            assert simulation.engine.compiled_steps == (4 if compiled else 0)
        assert counts == [expected, expected], (eta, counts)


def test_wrong_counts_match_the_fields_and_stop_past_the_criterion():
    rng = np.random.default_rng(4)
    weights = rng.standard_normal((5, 3, 7)).astype(np.float32)
    patterns, targets = rng.standard_normal((5, 11, 7)), np.where(rng.random((5, 11, 3)) < 0.5, -1.0, 1.0)
    wrong = (fields(weights, patterns) * targets <= 0).sum(axis=(1, 2))
    assert list(wrong_counts(weights, patterns, targets)) == list(wrong)
    reading = np.array([True, False, True, True, False])
    for allowed in (0, 4, 40):
        counted = wrong_counts(weights, patterns, targets, reading, allowed)
        assert list(counted[~reading]) == [0, 0]
        assert list(counted[reading] <= allowed) == list(wrong[reading] <= allowed)
    for total in (1, 7, 400, 12_345):
        for criterion in (1.0, 0.999, 0.9, 0.5, 1e-3):
            expected = max(w for w in range(-1, total + 1) if w < 0 or (total - w) / total >= criterion)
            assert allowed_wrong(total, criterion) == expected


# the protocol against its reference ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_perceptron_capacity_matches_the_reference_loop(backend):
    n, load, trials, epochs, seed = 12, 1.5, 6, 40, 11
    run = run_protocol("learn.capacity", {"n": n, "load": load, "trials": trials, "epochs": epochs, "order": "fixed"},
                       backend=backend, seed=seed, dtype="float64")
    data_seed, _ = np.random.SeedSequence(seed).spawn(2)
    patterns, targets = learning_data("perceptron", n, 1, 18, "binary", 0.1, False, trials, np.random.default_rng(data_seed))
    expected = reference.perceptron_training(patterns, targets, epochs, 1.0)
    assert list(run["met"].values) == [met for met, _, _, _ in expected]
    assert [None if np.isnan(e) else int(e) for e in run["epochs_to_criterion"].values] == [e for _, e, _, _ in expected]
    assert list(run["updates"].values) == [u for _, _, u, _ in expected]
    assert np.allclose(run["weight_norm"].values, [np.linalg.norm(w) for _, _, _, w in expected])
    cost = get_rule("perceptron").cost()  # eta * where(t * I <= kappa, t * x, 0): the where, t * x, eta * (.), +=
    assert int(run["patterns"]) == 18
    assert int(run["operations_per_synapse"]) == cost.adds + cost.multiplies + cost.functions == 4


# oracles -----------------------------------------------------------------------------------------


def test_perceptron_success_follows_covers_count():
    """Random +-1 dichotomies of p = load * 50 points, no bias: the perceptron rule separates those
    that are separable (Rosenblatt's convergence theorem), so its success never exceeds Cover's
    count beyond sampling noise and, with a generous budget, reaches it."""
    n, trials = 50, 20
    for load, epochs in ((1.0, 100), (1.5, 600), (2.5, 60)):
        run = run_protocol("learn.capacity", {"n": n, "load": load, "trials": trials, "epochs": epochs}, seed=2024)
        success, bound = float(run["met"].mean()), cover_probability(round(load * n), n)
        assert success <= bound + 3 * np.sqrt(bound * (1 - bound) / trials) + 1.0 / trials, (load, success, bound)
        if load <= 1.5:
            assert success >= 0.9 * bound, (load, success, bound)
        if load == 1.0:
            assert success == 1.0
        if load == 2.5:
            assert success <= 0.1


def test_perceptron_mistakes_obey_novikoffs_bound():
    """Novikoff (1962): on data a unit vector u separates with margin gamma (t u.x >= gamma for all
    items) within radius R (|x| <= R), the perceptron rule makes at most (R / gamma)^2 mistakes."""
    n, items, trials, gamma = 20, 40, 16, 0.6
    rng = np.random.default_rng(5)
    teacher = rng.standard_normal((trials, n))
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    patterns = np.empty((trials, items, n))
    for trial in range(trials):  # binary patterns at a margin of at least gamma from the teacher's plane
        kept = []
        while len(kept) < items:
            x = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            if abs(teacher[trial] @ x) >= gamma:
                kept.append(x)
        patterns[trial] = kept
    targets = np.sign(np.einsum("tn,tpn->tp", teacher, patterns))[..., None]
    bound = (np.sqrt(n) / gamma) ** 2
    network = learning_network(get_rule("perceptron"), "perceptron", n, 1)
    simulation = Simulation(network, trials=trials, seed=0, dtype="float64")
    result = train(simulation, patterns, targets, epochs=int(bound) + 1, criterion=1.0, order="shuffled")
    assert result["met"].all()
    assert (result["updates"] <= bound).all(), (result["updates"].max(), bound)
    assert result["updates"].min() > 0


# other architectures -------------------------------------------------------------------------------


def test_hetero_and_recurrent_architectures_learn_below_capacity():
    hetero = run_protocol("learn.capacity", {"rule": "perceptron", "architecture": "hetero", "n": 30, "m": 4, "load": 0.5,
                                             "trials": 4, "epochs": 100}, seed=1, backend="numpy")
    assert hetero["met"].all() and (hetero["fraction"] == 1.0).all()
    # Gardner (1988): a recurrent network stores patterns as fixed points up to load 2 with
    # perceptron learning; here teacher-forced (y_post is the pattern)
    rule = {"equations": ["w += where(y_post * I_post <= 0, y_post * x_pre, 0)"], "name": "recurrent perceptron"}
    recurrent = run_protocol("learn.capacity", {"rule": rule, "architecture": "recurrent", "n": 30, "load": 0.5,
                                                "trials": 4, "epochs": 100}, seed=1, backend="numpy")
    assert recurrent["met"].all()
    hebbian = run_protocol("learn.capacity", {"rule": {"equations": ["w += y_post * x_pre"]}, "architecture": "recurrent",
                                              "n": 100, "load": 0.05, "trials": 4, "epochs": 2}, seed=1, backend="numpy")
    assert hebbian["met"].all() and (hebbian["epochs_to_criterion"] == 1).all()  # Hopfield: one pass stores few patterns


def test_delta_rule_and_pc_rule_learn_the_same_with_pc_names():
    """The library's pc rule reads e_post * fx_pre; with e = target - I and fx = x it is the delta rule."""
    common = {"n": 20, "load": 0.5, "trials": 4, "epochs": 30, "lr": 0.02, "order": "fixed"}
    delta = run_protocol("learn.capacity", {"rule": "delta", **common}, seed=4, dtype="float64", backend="numpy")
    pc = run_protocol("learn.capacity", {"rule": "pc", **common}, seed=4, dtype="float64", backend="numpy")
    for name in ("met", "epochs_to_criterion", "updates"):
        assert np.array_equal(delta[name].values, pc[name].values, equal_nan=True)
    assert np.allclose(delta["weight_norm"], pc["weight_norm"])


# bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n": 10, "load": 0.01}, "load .* zero associations"),
        ({"criterion": 0.0}, "criterion"),
        ({"criterion": 1.5}, "criterion"),
        ({"rule": {"equations": ["a_post += y_post"]}}, "never writes the weight w"),
        ({"rule": "perceptron", "architecture": "recurrent"}, "target_post.*recurrent"),
        ({"rule": {"equations": ["w += q_post * x_pre"]}}, "q_post.*valid: I_post"),
        ({"rule": {"equations": ["w += x_pre"]}, "lr": 0.1}, "lr: .*no learning-rate parameter"),
        ({"rule": "three_factor"}, "modulator"),
        ({"architecture": "feedforward"}, "architecture"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message):
        run_protocol("learn.capacity", params)


# analysis ----------------------------------------------------------------------------------------


def test_cover_probability_by_hand():
    """C(p, N) = 2^(1 - p) sum_{k < N} binom(p - 1, k): 1 up to p = N, 1 - 2^-N at p = N + 1,
    exactly 1/2 at p = 2N; N = 2, p = 4: (1 + 3) / 8."""
    assert cover_probability(10, 10) == 1.0
    assert cover_probability(11, 10) == 1.0 - 2.0**-10
    assert cover_probability(100, 50) == 0.5
    assert cover_probability(4, 2) == 0.5 and cover_probability(5, 2) == (1 + 4) / 16
    curve = cover_curve(50, [1.0, 2.0, 3.0])
    assert list(curve["load"].values) == [1.0, 2.0, 3.0] and curve.values[1] == 0.5 and curve.values[2] < 1e-3
    with pytest.raises(ConfigError, match="positive integers"):
        cover_probability(0, 3)


def test_learning_cost_reads_a_sweep_of_the_protocol():
    """A hand-made store: rule a succeeds up to load 1 and fails from 2 (critical load 1.5 at 50%),
    rule b fails from 1; operations 4 and 2 per synapse per step."""
    loads, trials = [0.5, 1.0, 2.0], 4
    met = np.zeros((2, 3, trials), bool)
    met[0, :2] = True
    met[1, 0] = True
    presentations = np.full((2, 3, trials), 10)
    store = xr.Dataset(
        {"met": (("rule", "load", "trial"), met), "presentations": (("rule", "load", "trial"), presentations),
         "operations_per_synapse": (("rule", "load"), np.array([[4] * 3, [2] * 3]))},
        coords={"rule": ["a", "b"], "load": loads, "trial": np.arange(trials)},
    )
    cost = learning_cost(store, n_boot=50)
    assert cost["critical_load"].sel(rule="a") == 1.5 and cost["critical_load"].sel(rule="b") == 0.75
    assert list(cost["operations_per_synapse"].values) == [4, 2]
    assert cost["capacity_per_operation"].sel(rule="a") == 1.5 / 4
    assert cost["operations_to_learn"].sel(rule="a", load=0.5) == 40 and np.isnan(cost["operations_to_learn"].sel(rule="b", load=2.0))


def test_time_to_criterion_over_the_trials_that_met_it():
    from plasticity.analysis import time_to_criterion

    epochs = np.array([[1.0, 2.0, 3.0, np.nan], [np.nan] * 4])
    store = xr.Dataset({"epochs_to_criterion": (("load", "trial"), epochs)}, coords={"load": [1.0, 2.0]})
    result = time_to_criterion(store, quantiles=(0.0, 0.5, 1.0))
    assert list(result["epochs"].sel(load=1.0).values) == [1.0, 2.0, 3.0]
    assert np.isnan(result["epochs"].sel(load=2.0)).all()
    assert list(result["met"].values) == [0.75, 0.0]


# learning dynamics -------------------------------------------------------------------------------


def _norms(rule, steps, every, inputs, *, m=1, target=None, eta):
    """|w| recorded every ``every`` steps of ``rule`` (a linear output y = I, or clamped inputs)."""
    n = inputs.shape[-1]
    source = Population(n, init={"x": 0.0}, name="input")
    sink = Population(m, ["y = I"], init={"target": 0.0}, name="output")
    weights = Projection(source, sink, get_rule(rule).with_params(**eta), source="x", init={"w": 0.1}, name="weights")
    simulation = Simulation(Network([source, sink], [weights]), trials=2, backend="numpy", dtype="float64", seed=0)
    feed = {"input.x": inputs[:steps]} if target is None else {"input.x": inputs[:steps], "output.target": target[:steps]}
    run = simulation.run(steps, inputs=feed, record={"weights.w": every})
    w = run["weights.w"]
    return np.sqrt((w**2).sum(("weights_post", "weights_pre"))).rename({"time": "epoch"})


def test_regimes_of_rules_whose_regime_is_known():
    from plasticity.analysis import growth_rate, regime

    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((3000, 2, 4)) * np.array([1.0, 0.7, 0.5, 0.3])
    hebb = _norms("hebb", 3000, 50, gaussian, eta={"eta": 0.002, "decay": 0.0})
    assert set(regime(hebb).values) == {"runaway"}  # dw = eta C w: exponential growth
    assert np.allclose(growth_rate(hebb), 50 * 0.002 * 1.0, rtol=0.3)  # per record: 50 steps of eta * lambda_1
    oja = _norms("oja", 3000, 50, gaussian, eta={"eta": 0.01})
    assert set(regime(oja, tolerance=0.05).values) == {"converged"} and np.allclose(oja[-1], 1.0, atol=0.1)
    # delta rule on one fixed input x of |x|^2 = 4: the error is multiplied by 1 - 4 lr each step
    x = np.full((400, 2, 4), 1.0)
    target = np.full((400, 2, 1), 1.0)
    assert set(regime(_norms("delta", 400, 1, x, target=target, eta={"eta": 0.1})).values) == {"converged"}
    assert set(regime(_norms("delta", 400, 1, x, target=target, eta={"eta": 0.5})).values) == {"oscillating"}  # factor -1
    grown = _norms("delta", 60, 1, x, target=target, eta={"eta": 1.0})  # factor -3 each step
    assert set(regime(grown).values) == {"diverged"}
    decayed = _norms("hebb", 400, 4, np.zeros((400, 2, 4)), eta={"eta": 0.01, "decay": 0.05})
    assert set(regime(decayed).values) == {"collapse"}
    from plasticity.analysis import boundedness

    assert list(boundedness(hebb)["bounded"].values) == [False, False] and boundedness(oja)["bounded"].all()


def test_first_violation_of_a_lyapunov_function():
    from plasticity.analysis import first_violation

    energy = xr.DataArray([[5.0, 4.0, 3.0, 3.5, 2.0], [5.0, 4.0, 4.2, 1.0, 0.5]], dims=("trial", "step"),
                          coords={"trial": [0, 1], "step": [0, 10, 20, 30, 40]})
    assert first_violation(energy, "step") == {"step": 20, "index": 2, "size": pytest.approx(0.2), "relative": pytest.approx(0.04), "trial": 1}
    assert first_violation(energy.isel(trial=0), "step")["step"] == 30
    assert first_violation(energy, "step", rtol=0.2) is None  # rises of 4% and 10% of the size allowed


def test_learning_dynamics_are_recorded_per_epoch():
    run = run_protocol("learn.capacity", {"n": 20, "load": 1.0, "trials": 3, "epochs": 12, "record_every": 3},
                       backend="numpy", seed=3)
    assert list(run["epoch"].values) == [0, 3, 6, 9, 12]
    assert run["fraction_epoch"].isel(epoch=0).max() == 0.0  # zero weights get nothing right
    last = run["weight_norm_epoch"].isel(epoch=-1)
    assert np.allclose(last, run["weight_norm"])  # frozen once met: the final record is the final weights
    assert run["weight_quantiles_epoch"].sizes["quantile"] == 5
    assert (run["weight_quantiles_epoch"].diff("quantile") >= 0).all()
    assert (run["mean_abs_update"].isel(epoch=0) == 0).all() and (run["mean_abs_update"].isel(epoch=1) > 0).all()

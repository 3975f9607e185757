"""The generic polynomial kernel of the rule search against the engine, and the fast tasks' scores."""

import numpy as np
import pytest

import plasticity as pl
from plasticity import ConfigError
from plasticity.search import Grammar, Polynomial, enumerate_rules
from plasticity.search.kernel import LayerData, run_linear_layer
from plasticity.search.tasks import FAST_TASKS
from tests.backends import relative_error


def layer_data(trials=3, items=5, n=6, m=4, steps=40, seed=0):
    rng = np.random.default_rng(seed)
    return LayerData(
        np.where(rng.random((trials, items, n)) < 0.5, -1.0, 1.0), rng.standard_normal((trials, items, m)),
        rng.integers(0, items, (trials, steps)), 0.3 * rng.standard_normal((trials, m, n)),
    )


def engine_weights(rule, data, backend, modulators=None):
    """The same run on the engine: inputs x, outputs y = I with a target (and e = target - y),
    and the rule's ``modulators`` (``{"w.name": (steps, trials)}``) as inputs."""
    trials, m, n = data.w0.shape
    inputs = pl.Population(n, init={"x": 0.0}, name="input")
    outputs = pl.Population(m, ["y = I", "e = target - y"], init={"target": 0.0}, name="output")
    network = pl.Network([inputs, outputs], [pl.Projection(inputs, outputs, rule, source="x", init={"w": data.w0}, name="w")])
    simulation = pl.Simulation(network, trials=trials, backend=backend, dtype="float64")
    shown = np.arange(trials)[None, :], data.order.T
    simulation.run(data.steps, inputs={"input.x": data.patterns[shown[0], shown[1]],
                                       "output.target": data.targets[shown[0], shown[1]], **(modulators or {})})
    return simulation.get("w.w")


def candidate(equations):
    """A rule and the polynomial of its update (auxiliaries and e_post substituted, eta = 1)."""
    rule = pl.Rule(equations, params={"eta": 0.05}, form="strict" if len(equations) == 3 else "free")
    values = {}
    for equation in rule.parsed[:-1]:
        values[equation.target] = Polynomial.from_node(equation.expr).substitute(values)
    values["e_post"] = Polynomial.variable("target_post") - Polynomial.variable("y_post")
    values["eta"] = Polynomial.constant(1)
    return rule, Polynomial.from_node(rule.parsed[-1].expr).substitute(values)


RULES = {
    "delta": ["w += eta * (target_post - y_post) * x_pre"],
    "oja": ["w += eta * y_post * (x_pre - y_post * w)"],
    "powers": ["w += eta * (0.5 * w * w * x_pre - target_post * w + 0.25 - w * w * w * y_post * y_post)"],
    "error term": ["w += eta * e_post * (x_pre + 1)"],
    "strict 3Q": ["q1_post = y_post * y_post", "q2 = q1_post * w", "w += eta * (x_pre * y_post - q2)"],
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_generic_kernel_equals_the_engine(name):
    """One compiled kernel with the rule as data gives the weights the engine's own kernels give."""
    rule, polynomial = candidate(RULES[name])
    data = layer_data()
    weights, diverged_at = run_linear_layer(data, [polynomial], [0.05])
    assert (diverged_at == -1).all()
    assert relative_error(weights[0], engine_weights(rule, data, "numpy")) < 1e-12


def test_generic_kernel_equals_the_generated_numba_kernel():
    rule, polynomial = candidate(RULES["strict 3Q"])
    data = layer_data(seed=1)
    weights, _ = run_linear_layer(data, [polynomial], [0.05])
    assert relative_error(weights[0], engine_weights(rule, data, "numba")) < 1e-12


def test_generic_kernel_equals_the_engine_with_a_global_modulator():
    """A three-factor rule: the kernel reads the reward set with each item as the engine reads a
    modulator set as an input (one value per trial and step)."""
    data = layer_data(seed=2)
    rng = np.random.default_rng(3)
    rewards = rng.choice([0.0, 1.0, -0.5], data.patterns.shape[:2] + (1,))
    data = LayerData(data.patterns, data.targets, data.order, data.w0, rewards)
    rule = pl.Rule(["w += eta * (reward * x_pre * (target_post - y_post) + reward * reward * w)"], params={"eta": 0.05},
                   modulators=("reward",))
    x, y, target, reward, w = (Polynomial.variable(name) for name in ("x_pre", "y_post", "target_post", "reward", "w"))
    weights, diverged_at = run_linear_layer(data, [reward * x * (target - y) + reward * reward * w], [0.05])
    assert (diverged_at == -1).all()
    shown = np.arange(data.trials)[None, :], data.order.T
    engine = engine_weights(rule, data, "numpy", {"w.reward": rewards[shown[0], shown[1], 0]})
    assert relative_error(weights[0], engine) < 1e-12


def test_many_candidates_and_learning_rates_in_one_call():
    data = layer_data()
    rules = [candidate(RULES[name]) for name in sorted(RULES)]
    weights, _ = run_linear_layer(data, [p for _, p in rules] * 2, [0.05] * len(rules) + [0.02] * len(rules))
    for k, (rule, polynomial) in enumerate(rules):
        assert relative_error(weights[k], run_linear_layer(data, [polynomial], [0.05])[0][0]) < 1e-14
        alone = run_linear_layer(data, [polynomial], [0.02])[0][0]
        assert relative_error(weights[len(rules) + k], alone) < 1e-14


def test_divergence_is_caught_at_its_step():
    data = layer_data(steps=200)
    grow = Polynomial.variable("w") * Polynomial.variable("w")
    weights, diverged_at = run_linear_layer(data, [grow, grow], [2.0, 1e-6], bound=1e3)
    assert (diverged_at[0] >= 0).all() and (diverged_at[0] < 50).all() and (diverged_at[1] == -1).all()
    assert (np.abs(weights[0]).max(axis=(-1, -2)) > 1e3).all()
    _, probe = run_linear_layer(data, [grow], [2.0], steps=3, bound=1e3)
    assert (probe == -1).all()  # the short probe stops before the weights leave the bound


def test_a_term_the_layer_lacks_is_an_error():
    with pytest.raises(ConfigError, match="offers the terms .* a rule reads 'm'"):
        run_linear_layer(layer_data(), [Polynomial.variable("m")], [0.1])


def test_association_score_separates_recall_from_zero_and_hebbian_crosstalk():
    problem = FAST_TASKS["association"].problem({"n": 32, "m": 8, "load": 0.5, "trials": 4}, seed=3)
    patterns, targets = problem.data.patterns, problem.data.targets
    exact = np.stack([np.linalg.lstsq(p, t, rcond=None)[0].T for p, t in zip(patterns, targets)])
    hebbian = np.einsum("rpm,rpn->rmn", targets, patterns) / 32
    assert np.allclose(problem.score(exact), 1.0) and np.allclose(problem.capacity(exact), 0.5)
    assert np.allclose(problem.score(np.zeros_like(exact)), 0.0) and np.allclose(problem.capacity(np.zeros_like(exact)), 0)
    assert (problem.score(hebbian) < 0.9).all() and (problem.score(hebbian) > 0).all()


def test_pca_score_needs_the_first_component_at_unit_norm():
    task = FAST_TASKS["pca"]
    problem = task.problem({"n": 8, "trials": 2, "steps": 4000}, seed=0)
    x = problem.data.patterns
    first = np.stack([np.linalg.eigh(np.cov(trial.T))[1][:, -1] for trial in x])[:, None, :]
    second = np.stack([np.linalg.eigh(np.cov(trial.T))[1][:, -2] for trial in x])[:, None, :]
    assert (problem.score(first) > 0.98).all()
    assert (problem.score(10 * first) < 0.11).all() and (problem.score(first / 10) < 0.11).all()
    assert (problem.score(second) < 0.2).all()


def test_delta_ranks_first_on_the_kernel():
    task = FAST_TASKS["association"]
    found = enumerate_rules(Grammar(("x_pre", "y_post", "target_post"), constants=(), max_operations=2),
                            definitions=task.definition_polynomials())
    problem = task.problem({"n": 8, "m": 4, "steps": 600, "trials": 4}, seed=0)
    weights, diverged_at = run_linear_layer(problem.data, [c.polynomial for c in found.candidates], [0.05] * len(found.candidates))
    scores = np.where((diverged_at >= 0).any(1), -np.inf, problem.score(weights).mean(1))
    assert found.candidates[int(np.argmax(scores))].text() == "w += eta * x_pre * (target_post - y_post)"
    assert np.sort(scores)[-1] > 0.99 > np.sort(scores)[-2]


def test_reward_task_rewards_the_right_output_only():
    """Each input is shown with its right output (reward 1) and with its opposite (reward 0):
    storing every item shown cancels out, storing the rewarded ones recalls (Hebbian crosstalk at
    load 0.5: about 8% of signs wrong), random weights
    score chance (0.5)."""
    problem = FAST_TASKS["reward"].problem({"n": 32, "m": 8, "load": 0.5, "trials": 4}, seed=3)
    patterns, actions, rewards = problem.data.patterns, problem.data.targets, problem.data.modulators
    pairs = patterns.shape[1] // 2
    assert (rewards[:, :pairs] == 1).all() and (rewards[:, pairs:] == 0).all()
    assert np.array_equal(patterns[:, :pairs], patterns[:, pairs:]) and np.array_equal(actions[:, :pairs], -actions[:, pairs:])
    exact = np.stack([np.linalg.lstsq(p[:pairs], t[:pairs], rcond=None)[0].T for p, t in zip(patterns, actions)])
    rewarded = np.einsum("rp,rpm,rpn->rmn", rewards[..., 0], actions, patterns)
    every = np.einsum("rpm,rpn->rmn", actions, patterns)
    assert np.allclose(problem.score(exact), 1.0) and np.allclose(problem.capacity(exact), 0.5)
    assert (problem.score(rewarded) > 0.85).all() and np.allclose(every, 0) and np.allclose(problem.score(every), 0)
    random = np.random.default_rng(0).standard_normal((200, *exact.shape))
    assert abs(problem.score(random).mean() - 0.5) < 0.02

"""Behavioural oracles: each library rule does what its paper says it is for, with a stated margin.

test_rule_mathematics.py checks one update against the formula; these check the consequence over
many updates (a fixed point, a growth rate, a selectivity), so a rule that is right for one step
but wrong in what it converges to, or a wrong factor that one step's tolerance would miss, fails.
Oja's and Sanger's oracles (principal components, unit norm) are in test_pca.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import plasticity as pl
from plasticity.networks.predictive_coding import PredictiveCodingModel


def _exact_moments(rng, samples, eigenvalues):
    """``samples`` zero-mean inputs whose sample covariance is exactly diag(eigenvalues) in a random basis:
    the data, the basis (rows)."""
    n = len(eigenvalues)
    z = rng.standard_normal((samples, n))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / samples)).T  # white: z^T z / samples = identity
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (z * np.sqrt(eigenvalues)) @ basis.T, basis.T


def test_delta_rule_reaches_the_least_squares_weights():
    """Widrow & Hoff (1960): the delta rule descends the squared error, so with the update averaged over
    a batch (shared weights) a linear unit's weights reach the least-squares solution; within 1%
    (reached: 1e-9 after 300 steps)."""
    rng = np.random.default_rng(0)
    samples, n, k = 40, 5, 2
    inputs = rng.normal(size=(samples, n))
    targets = inputs @ rng.normal(size=(n, k)) + 0.5 * rng.normal(size=(samples, k))  # not exactly linear
    pre = pl.Population(n, init={"x": 0.0}, name="pre")
    post = pl.Population(k, ["y = I"], init={"target": 0.0}, name="post")
    projection = pl.Projection(pre, post, "delta", params={"eta": 0.3}, init={"w": 0.0}, shared=True, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), trials=samples, backend="numpy", dtype="float64")
    sim.set("pre.x", inputs)
    sim.set("post.target", targets)
    sim.advance(300)
    solution = np.linalg.lstsq(inputs, targets, rcond=None)[0].T
    assert np.linalg.norm(sim.get("p.w") - solution) <= 0.01 * np.linalg.norm(solution)


def test_hebb_weight_norm_grows_at_the_rate_of_the_top_covariance_eigenvalue():
    """Plain Hebbian learning of a linear unit y = w.x averages to dw = eta C w - decay w (Dayan & Abbott
    2001, sec. 8.2): w turns to the top eigenvector of C and |w| grows by the factor 1 + eta l1 - decay
    per step. Measured over the last 50 of 250 steps, within 0.1% of the factor's logarithm."""
    rng = np.random.default_rng(1)
    eigenvalues = np.array([2.0, 1.0, 0.5, 0.25])
    inputs, components = _exact_moments(rng, 64, eigenvalues)
    eta, decay = 0.01, 0.004
    pre = pl.Population(4, init={"x": 0.0}, name="pre")
    post = pl.Population(1, ["y = I"], name="post")
    projection = pl.Projection(pre, post, "hebb", params={"eta": eta, "decay": decay}, shared=True, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), trials=64, backend="numpy", dtype="float64", seed=2)
    sim.set("pre.x", inputs)
    sim.advance(200)
    before = np.linalg.norm(sim.get("p.w"))
    sim.advance(50)
    w = sim.get("p.w")[0]  # the one output's weights
    rate = np.log(np.linalg.norm(w) / before) / 50
    assert rate == pytest.approx(np.log(1 + eta * eigenvalues[0] - decay), rel=1e-3)
    assert abs(w @ components[0]) / np.linalg.norm(w) > 0.999


def _selectivity(rule, params, steps=4000, trials=16):
    """Responses of linear units y = w.x to two overlapping patterns shown at random with probability 1/2,
    averaged over the last quarter of the run: (trials, pattern)."""
    patterns = np.array([[1.0, 0.3], [0.3, 1.0]])
    pre = pl.Population(2, init={"x": 0.0}, name="pre")
    post = pl.Population(1, ["y = I"], name="post")
    w0 = np.random.default_rng(0).uniform(0.2, 0.6, (trials, 1, 2))  # responds to both patterns at first
    projection = pl.Projection(pre, post, rule, params=params, init={"w": w0}, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), trials=trials, backend="numpy", dtype="float64")
    shown = np.random.default_rng(1).integers(0, 2, (steps, trials))
    ds = sim.run(steps, inputs={"pre.x": patterns[shown]}, record={"p.w": 100})
    w = ds["p.w"].isel(time=slice(-steps // 400, None)).mean("time").values[:, 0]
    return w @ patterns.T


@pytest.mark.parametrize("rule", ["bcm", "bcm3q"])
def test_bcm_becomes_selective_to_one_of_two_patterns(rule):
    """Bienenstock, Cooper & Munro (1982): with the threshold theta = <y^2>, the stable fixed points of
    two patterns shown with probability p = 1/2 respond to one pattern with y = 1/p = 2 and not at all to
    the other. bcm3q moves theta towards the current y^2 before using it, which moves the fixed point to
    2 / (1 + alpha). Every unit, starting responsive to both, ends selective: preferred response within
    10% of the fixed point (reached: within 6%), the other below 5% of it (reached: 2%); both patterns
    win some units."""
    params = {"eta": 0.02, "tau": 5.0} if rule == "bcm" else {"eta": 0.02, "alpha": 0.2}
    fixed_point = 2.0 if rule == "bcm" else 2.0 / (1 + params["alpha"])
    responses = _selectivity(rule, params)
    preferred, other = responses.max(axis=1), responses.min(axis=1)
    np.testing.assert_allclose(preferred, fixed_point, rtol=0.1)
    assert np.all(np.abs(other) < 0.05 * preferred), responses
    assert set(responses.argmax(axis=1)) == {0, 1}


def test_covariance_rule_weights_follow_the_input_output_covariance():
    """Sejnowski (1977): dw = eta (y - <y>)(x - <x>) accumulates the covariance of y and x, not their raw
    correlation: with means far from zero, w / (eta steps) approaches Cov(y, x) (times (1 - alpha)^2, as
    the running means include the current sample), within 5% of its norm (reached: 2%)."""
    rng = np.random.default_rng(3)
    steps, trials, alpha = 3000, 32, 0.02
    mixing = np.array([[1.0, -0.5, 0.0], [0.0, 0.8, 0.6]])
    x = rng.normal(size=(steps, trials, 3)) + np.array([2.0, -1.0, 1.5])  # means far from zero
    y = x @ mixing.T + 0.3 * rng.normal(size=(steps, trials, 2)) + np.array([1.0, -2.0])
    pre = pl.Population(3, init={"x": 0.0}, name="pre")
    post = pl.Population(2, init={"y": 0.0}, name="post")
    projection = pl.Projection(pre, post, "covariance", params={"eta": 1e-3, "alpha": alpha}, init={"w": 0.0,
                               "xbar_pre": np.array([2.0, -1.0, 1.5]), "ybar_post": np.array([1.0, -2.0])},
                               shared=True, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), trials=trials, backend="numpy", dtype="float64")
    sim.run(steps, inputs={"pre.x": x, "post.y": y})
    covariance = mixing * 1.0  # Cov(y, x) = mixing Cov(x) = mixing
    learned = sim.get("p.w") / (1e-3 * steps) / (1 - alpha) ** 2
    assert np.linalg.norm(learned - covariance) <= 0.05 * np.linalg.norm(covariance)


def test_foldiak_lateral_weights_decorrelate_the_outputs():
    """Foldiak (1990): anti-Hebbian lateral weights between units y = u + W y grow inhibitory until the
    outputs are uncorrelated. Inputs correlated 0.5-0.7; outputs after learning below 0.02."""
    rng = np.random.default_rng(4)
    samples = 200
    mixing = np.array([[1.0, 0.6, 0.4], [0.6, 1.0, 0.5], [0.4, 0.5, 1.0]])
    inputs = rng.normal(size=(samples, 3)) @ np.linalg.cholesky(mixing).T
    units = pl.Population(3, ["y = u + L"], init={"u": 0.0}, name="units")
    lateral = pl.Projection(units, units, "foldiak", source="y", target="L", params={"eta": 0.05},
                            init={"w": 0.0}, mask=~np.eye(3, dtype=bool), shared=True, name="p")
    sim = pl.Simulation(pl.Network([units], [lateral]), trials=samples, backend="numpy", dtype="float64")
    sim.set("units.u", inputs)
    before = np.corrcoef(inputs.T)[~np.eye(3, dtype=bool)]
    sim.advance(1500)
    w = sim.get("p.w")  # shared: (post, pre)
    outputs = inputs @ np.linalg.inv(np.eye(3) - w).T  # the fixed point of y = u + W y
    after = np.corrcoef(outputs.T)[~np.eye(3, dtype=bool)]
    assert before.min() > 0.4
    assert np.abs(after).max() < 0.02, after
    assert np.all(w[~np.eye(3, dtype=bool)] < 0)  # inhibitory
    np.testing.assert_allclose(sim.get("units.y"), outputs, atol=1e-6)  # the units sit at that fixed point


def test_perceptron_converges_within_novikoffs_bound():
    """Rosenblatt's rule on data a teacher separates with margin gamma: at most (R / gamma)^2 mistakes
    (Novikoff 1962), after which every pattern is classified right."""
    rng = np.random.default_rng(5)
    n = 20
    teacher = rng.normal(size=n)
    teacher /= np.linalg.norm(teacher)
    x = rng.choice([-1.0, 1.0], size=(400, n))
    x = x[np.abs(x @ teacher) >= 0.5][:60]  # margin gamma = 0.5 to the unit teacher
    labels = np.sign(x @ teacher)
    bound = n / 0.5**2  # R^2 / gamma^2 with R = sqrt(n)
    pre = pl.Population(n, init={"x": 0.0}, name="pre")
    post = pl.Population(1, init={"target": 0.0}, name="post")
    network = pl.Network([pre, post], [pl.Projection(pre, post, "perceptron", init={"w": 0.0}, name="p")])
    sim = pl.Simulation(network, backend="numpy", dtype="float64")
    epochs = 20
    order = np.tile(np.arange(len(x)), epochs)
    ds = sim.run(len(order), inputs={"pre.x": x[order], "post.target": labels[order, None]}, record={"p.w": 1})
    w = ds["p.w"].values[:, 0, 0]
    mistakes = int(np.sum(np.any(np.diff(w, axis=0, prepend=0.0) != 0, axis=1)))
    assert 0 < mistakes <= bound
    assert np.all(np.sign(x @ w[-1]) == labels)


def test_three_factor_rule_follows_the_sign_of_its_modulator():
    """Fremaux & Gerstner (2016): a Hebbian eligibility trace becomes a weight change only through the
    modulator: a reward above baseline strengthens the co-active synapses, one below weakens them, one at
    baseline leaves them, in proportion to m - baseline."""
    rng = np.random.default_rng(6)
    steps, trials = 200, 3
    x = np.abs(rng.normal(size=(steps, trials, 4)))
    y = x[..., :2] + 0.1 * rng.normal(size=(steps, trials, 2))  # output i driven by input i: yx > 0 there
    pre = pl.Population(4, init={"x": 0.0}, name="pre")
    post = pl.Population(2, init={"y": 0.0}, name="post")
    projection = pl.Projection(pre, post, "three_factor", params={"baseline": 0.5}, init={"w": 0.0}, name="p")
    sim = pl.Simulation(pl.Network([pre, post], [projection]), trials=trials, backend="numpy", dtype="float64")
    modulator = np.array([1.5, -0.5, 0.5])  # above, below and at the baseline, one per trial
    sim.run(steps, inputs={"pre.x": x, "post.y": y, "p.m": np.broadcast_to(modulator, (steps, trials))})
    w = sim.get("p.w")
    assert np.all(w[0] > 0) and np.all(w[1] < 0) and np.all(w[2] == 0)
    np.testing.assert_allclose(w[0], -w[1], rtol=0.3)  # same size: |m - baseline| = 1 in both
    eligibility = sim.get("p.e")
    assert np.all(eligibility > 0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pc_weight_update_is_the_negative_gradient_of_the_energy(optimizer):
    """Whittington & Bogacz (2017), eq. 12: after inference the update is -lr dF/dW of the energy
    F = sum_l |x_l - W_l f(x_{l-1}) - b_l|^2 / 2 averaged over the batch, at the inferred values (torch
    autograd of F from the recorded values); for pc_adam the step's gradient d is that -dF/dW."""
    sizes, batch, lr = [3, 5, 4, 2], 4, 0.05
    rng = np.random.default_rng(7)
    model = PredictiveCodingModel(sizes, mode="pc", optimizer=optimizer, lr=lr, gamma=0.2, batch=batch,
                                  backend="numpy", dtype="float64", seed=8)
    model.set_weights({f"b{l}": rng.normal(0, 0.3, n) for l, n in enumerate(sizes[1:], start=1)})
    model.forward(rng.normal(size=(batch, 3)), rng.normal(size=(batch, 2)))
    model.infer(5)
    values = [torch.tensor(model.sim.get(f"layer{l}.x")) for l in range(len(sizes))]
    before = model.weights()
    params = {name: torch.tensor(value, requires_grad=True) for name, value in before.items()}
    energy = 0.0
    for l in range(1, len(sizes)):
        rate = values[l - 1] if l == 1 else torch.tanh(values[l - 1])
        error = values[l] - rate @ params[f"w{l}"].T - params[f"b{l}"]
        energy = energy + 0.5 * (error**2).sum() / batch
    energy.backward()
    model.learn()
    after = model.weights()
    for name, param in params.items():
        gradient = -param.grad.numpy()
        if optimizer == "sgd":
            np.testing.assert_allclose(after[name] - before[name], lr * gradient, rtol=1e-9, atol=1e-13)
        else:
            d = model.sim.get(f"{name}.d")
            np.testing.assert_allclose(d[:, 0] if name.startswith("b") else d, gradient, rtol=1e-9, atol=1e-13)
    assert float(params["w1"].grad.abs().max()) > 1e-3  # inference left hidden errors to learn from

"""The rule library: every rule is documented, runs, and the strict ones are 3Q-style."""

import numpy as np
import pytest

import plasticity as pl
from plasticity.rules import describe_rule, get_rule, list_rules

RULES = sorted(list_rules())


def network_for(rule: pl.Rule, n: int = 6, k: int = 3) -> pl.Network:
    """Pre and post populations holding every variable ``rule`` reads; post ``y = I``. A rule that
    reads the pre side's field (a memory's storage rule) runs on a recurrent projection of one
    population."""
    if "I" in rule.unit_reads("pre"):
        variables = (rule.unit_reads("pre") | rule.unit_reads("post")) - {"I", "y"}
        init = {var: float(n) if var == "n" else 0.0 for var in sorted(variables)}  # n: the number of units
        units = pl.Population(n, ["y = I"], init=init, name="pre")
        return pl.Network([units], [pl.Projection(units, units, rule, source="x", name="p")])
    pre_vars = {"x"} | rule.unit_reads("pre")
    post_reads = rule.unit_reads("post") - {"I"}
    pre = pl.Population(n, init={var: 0.0 for var in sorted(pre_vars)}, name="pre")
    post = pl.Population(k, ["y = I"] if "y" in post_reads else [], init={v: 0.0 for v in sorted(post_reads - {"y"})}, name="post")
    if not post.variables:
        post = pl.Population(k, ["y = I"], name="post")
    return pl.Network([pre, post], [pl.Projection(pre, post, rule, source="x", name="p")])


@pytest.mark.parametrize("name", RULES)
def test_every_rule_is_documented(name):
    rule = get_rule(name)
    assert rule.name == name and rule.reference and rule.description
    text = describe_rule(name)
    for fragment in ("equations:", "cost per synapse per step:", "reference:", *rule.equations):
        assert fragment in text


@pytest.mark.parametrize("name", RULES)
def test_every_rule_runs_finite_with_its_defaults(name):
    rule = get_rule(name)
    network = network_for(rule)
    sim = pl.Simulation(network, trials=2, backend="numpy", seed=0)
    inputs = {}
    computed = {f"{name}.{eq.var}" for name, population in network.populations.items() for eq in population.equations}
    for key in sim._input_keys() - computed - {"pre.n"}:  # everything the equations do not compute; n is a constant
        inputs[key] = lambda step, rng, shape=sim.shapes[key]: rng.uniform(-1, 1, shape)
    ds = sim.run(100, inputs=inputs, record={"p.w": 10})
    assert np.isfinite(ds["p.w"]).all()
    assert not np.allclose(ds["p.w"].isel(time=0), ds["p.w"].isel(time=-1))


def test_at_least_two_strict_three_equation_rules_ship():
    strict = [rule for rule in list_rules().values() if rule.form == "strict"]
    assert len(strict) >= 2
    for rule in strict:
        assert len(rule.equations) == 3
        cost = rule.cost()
        assert cost.divides == cost.functions == cost.comparisons == 0


def test_unknown_rule_lists_the_valid_ones():
    with pytest.raises(pl.ConfigError, match="unknown rule 'ojja'; built-in rules: .*oja.*sanger"):
        get_rule("ojja")


def test_perceptron_stores_separable_patterns():
    """Below Cover's capacity 2N, random +-1 patterns with random labels become separable."""
    n, patterns = 40, 40
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(patterns, n))
    labels = rng.choice([-1.0, 1.0], size=patterns)
    pre = pl.Population(n, init={"x": 0.0}, name="pre")
    post = pl.Population(1, ["y = I"], init={"target": 0.0}, name="post")
    network = pl.Network([pre, post], [pl.Projection(pre, post, "perceptron", init={"w": 0.0}, name="p")])
    sim = pl.Simulation(network, backend="numpy", dtype="float64")
    epochs = 100
    order = np.tile(np.arange(patterns), epochs)
    sim.run(len(order), inputs={"pre.x": x[order], "post.target": labels[order, None]})
    w = sim.get("p.w")[0, 0]
    assert np.all(np.sign(x @ w) == labels)


def test_cost_table_over_the_library():
    from plasticity.analysis.cost import rule_costs

    table = rule_costs()
    assert set(table.rule.values) == set(RULES)
    oja = table.sel(rule="oja")
    assert int(oja.operations.sel(operation="multiplies")) == 3  # 2 for the rule, 1 for the drive
    assert int(oja.bytes) == 8  # read and write w, float32
    assert int(rule_costs([get_rule("oja")], include_drive=False).operations.sel(rule="oja", operation="adds")) == 2

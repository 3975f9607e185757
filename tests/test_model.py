"""Model objects: populations, projections and networks are checked when built."""

import numpy as np
import pytest

import plasticity as pl


def feedforward(rule="oja", n=4, k=2, **projection):
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(k, ["y = I"], name="out")
    proj = pl.Projection(inp, out, rule, name="ff", **projection)
    return pl.Network([inp, out], [proj])


def test_network_builds_the_documented_step_program():
    network = feedforward()
    assert [op.kind for op in network.program] == ["reset", "drive", "units", "plasticity"]
    assert network.program[0].targets == (("out", "I"),)
    assert network.variables() == {"inp.x": "unit", "out.y": "unit", "out.I": "summed", "ff.w": "synapse"}


def test_typo_in_population_equation_is_caught_when_the_network_is_built():
    inp = pl.Population(3, init={"x": 0.0}, name="inp")
    out = pl.Population(2, ["y = tanh(Ii)"], name="out")
    proj = pl.Projection(inp, out, "oja", name="ff")
    with pytest.raises(pl.EquationError, match="unknown variable 'Ii' in population 'out'.*summed inputs from projections \\(I\\)") as raised:
        pl.Network([inp, out], [proj])
    assert raised.value.equation == "y = tanh(Ii)"
    assert raised.value.column == 10


def test_assigning_a_summed_input_is_an_error():
    inp = pl.Population(3, init={"x": 0.0}, name="inp")
    out = pl.Population(2, ["I = 0", "y = I"], name="out")
    with pytest.raises(pl.EquationError, match="summed input"):
        pl.Network([inp, out], [pl.Projection(inp, out, "oja", name="ff")])


def test_rule_reading_a_missing_post_variable_is_an_error():
    inp = pl.Population(3, init={"x": 0.0}, name="inp")
    out = pl.Population(2, ["r = I"], name="out")
    with pytest.raises(pl.EquationError, match="unknown variable y_post: the post population 'out' has no variable 'y'") as raised:
        pl.Projection(inp, out, "oja", source="x")
    assert raised.value.equation == "w += eta * y_post * (x_pre - y_post * w)"


def test_projection_errors_name_the_problem():
    inp = pl.Population(3, init={"x": 0.0, "z": 0.0}, name="inp")
    out = pl.Population(2, ["y = I"], name="out")
    with pytest.raises(pl.ConfigError, match="has several variables \\(x, z\\).*source="):
        pl.Projection(inp, out, "oja")
    with pytest.raises(pl.ConfigError, match="source 'q' is not a variable of the pre population 'inp'"):
        pl.Projection(inp, out, "oja", source="q")
    with pytest.raises(pl.ConfigError, match="unknown rule 'ojaa'; built-in rules: .*oja"):
        pl.Projection(inp, out, "ojaa", source="x")
    with pytest.raises(pl.ConfigError, match="mask must have shape \\(post, pre\\) = \\(2, 3\\)"):
        pl.Projection(inp, out, "oja", source="x", mask=np.ones((3, 2)))
    with pytest.raises(pl.ConfigError, match="has no parameter 'lr'"):
        pl.Projection(inp, out, "oja", source="x", params={"lr": 0.1})
    with pytest.raises(pl.ConfigError, match="init names q"):
        pl.Projection(inp, out, "oja", source="x", init={"q": 0.0})


def test_populations_validate_their_arguments():
    with pytest.raises(pl.ConfigError, match=r"n must be an integer in \[1, 16777216\]; got 0"):
        pl.Population(0)
    with pytest.raises(pl.EquationError, match="'beta' is a parameter and cannot be assigned"):
        pl.Population(2, ["beta = 1"], params={"beta": 1.0})


def test_network_rejects_duplicate_names_and_foreign_populations():
    a = pl.Population(2, init={"x": 0.0}, name="a")
    b = pl.Population(2, init={"x": 0.0}, name="a")
    with pytest.raises(pl.ConfigError, match="two populations are named 'a'"):
        pl.Network([a, b])
    c = pl.Population(2, ["y = I"], name="c")
    with pytest.raises(pl.ConfigError, match="not in the network"):
        pl.Network([c], [pl.Projection(a, c, "oja", name="p")])


def test_custom_stages_must_cover_population_equations():
    inp = pl.Population(3, init={"x": 0.0}, name="inp")
    out = pl.Population(2, {"values": ["y = I"]}, name="out")
    with pytest.raises(pl.ConfigError, match="has equations for stage 'values'; the network's unit stages are 'units'"):
        pl.Network([inp, out], [pl.Projection(inp, out, "oja", name="ff")])
    network = pl.Network([inp, out], [pl.Projection(inp, out, "oja", name="ff")], stages=("drive", "values", "plasticity"))
    assert [op.kind for op in network.program] == ["reset", "drive", "units", "plasticity"]


def test_simulation_validates_its_arguments():
    network = feedforward()
    with pytest.raises(pl.BackendError, match="unknown backend 'jax'; valid backends: numpy, numba, torch"):
        pl.Simulation(network, backend="jax")
    with pytest.raises(pl.ConfigError, match="dtype must be one of float32, float64"):
        pl.Simulation(network, backend="numpy", dtype="int8")
    with pytest.raises(pl.ConfigError, match=r"trials must be an integer in \[1, 16777216\]; got 0"):
        pl.Simulation(network, backend="numpy", trials=0)
    with pytest.raises(pl.BackendError, match="runs on the CPU only"):
        pl.Simulation(network, backend="numpy", device="cuda")
    sim = pl.Simulation(network, backend="numpy")
    with pytest.raises(pl.ConfigError, match="unknown variable 'out.z'; valid variables: inp.x, out.y, out.I, ff.w"):
        sim.run(1, record={"out.z": 1})
    with pytest.raises(pl.ConfigError, match="cannot drive 'out.I' with an input"):
        sim.run(1, inputs={"out.I": np.zeros(2)})
    with pytest.raises(pl.ConfigError, match="input 'inp.x' has 5 steps, but the run has 3"):
        sim.run(3, inputs={"inp.x": np.zeros((5, 4))})
    with pytest.raises(pl.ConfigError, match="plastic names nope, not projections"):
        sim.run(1, plastic={"nope"})
    with pytest.raises(pl.ConfigError, match="initial value of ff.w has shape \\(3,\\), which does not broadcast"):
        pl.Simulation(feedforward(init={"w": np.ones(3)}), backend="numpy")


def _tiny() -> pl.Network:
    return pl.Network([pl.Population(2, ["y = 0.5 * y"], init={"y": 1.0}, name="a")])


_inp = pl.Population(3, init={"x": 0.0}, name="inp")
_out = pl.Population(2, ["y = I"], name="out")
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: pl.Simulation(_tiny(), dt=NAN), "dt"),
        (lambda: pl.Simulation(_tiny(), dt=-0.1), "dt"),
        (lambda: pl.Simulation(_tiny(), dt="0.1"), "dt"),
        (lambda: pl.Simulation(_tiny(), trials=2.0), "trials"),
        (lambda: pl.Simulation(_tiny(), trials=10**12), "trials"),
        (lambda: pl.Simulation(_tiny(), seed=-1), "seed"),
        (lambda: pl.Simulation(_tiny(), seed=1.5), "seed"),
        (lambda: pl.Population(2.5), "n"),
        (lambda: pl.Population(-3), "n"),
        (lambda: pl.Population(10**12), "n"),
        (lambda: pl.Population("4"), "n"),
        (lambda: pl.Population(2, ["y = beta * y"], params={"beta": NAN}), "params.beta"),
        (lambda: pl.Population(2, ["y = beta * y"], params={"beta": "1"}), "params.beta"),
        (lambda: pl.Projection(_inp, _out, "oja", params={"eta": INF}), "params.eta"),
        (lambda: pl.Projection(_inp, _out, "oja", params={"eta": "0.1"}), "params.eta"),
        (lambda: pl.Projection(_inp, _out, "oja", shared="yes"), "shared"),
        (lambda: pl.init.normal(NAN), "std"),
        (lambda: pl.init.normal(-1.0), "std"),
        (lambda: pl.init.normal(1.0, mean="0"), "mean"),
        (lambda: pl.init.uniform(0.0, INF), "high"),
        (lambda: pl.init.uniform(1.0, 0.0), "high"),
        (lambda: pl.init.constant(NAN), "value"),
        (lambda: pl.Simulation(pl.Network([pl.Population(2, init={"x": np.array([0.0, NAN])}, name="p")])), "initial value of p.x"),
    ],
)
def test_constructors_check_their_numeric_arguments_like_protocols(make, name):
    """The specs of plasticity.params, as protocols use them: a wrong type, NaN, a negative or a
    huge value is a ConfigError naming the argument, not a raw numpy or Python error."""
    with pytest.raises(pl.ConfigError) as raised:
        make()
    assert str(raised.value).startswith(f"{name} must be"), str(raised.value)

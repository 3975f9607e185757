"""Simulation semantics on the numpy reference backend: step order, inputs, recording, provenance."""

import json
import tracemalloc

import numpy as np
import pytest

import plasticity as pl
from plasticity.backends import available_backends, numba_backend, numpy_backend
from plasticity.simulation import CHECK_EVERY


def oja_network(n=5, k=3, **projection):
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(k, ["y = I"], name="out")
    proj = pl.Projection(inp, out, "oja", name="ff", **projection)
    return pl.Network([inp, out], [proj])


def test_oja_step_matches_the_formula():
    network = oja_network(params={"eta": 0.1})
    sim = pl.Simulation(network, trials=2, backend="numpy", dtype="float64", seed=3)
    w0 = sim.get("ff.w")
    x = np.random.default_rng(0).standard_normal((2, 5))
    sim.run(1, inputs={"inp.x": x[None]})
    y = np.einsum("bij,bj->bi", w0, x)
    expected = w0 + 0.1 * y[:, :, None] * (x[:, None, :] - y[:, :, None] * w0)
    np.testing.assert_allclose(sim.get("ff.w"), expected, rtol=1e-12)
    np.testing.assert_allclose(sim.get("out.y"), y, rtol=1e-12)


def test_sanger_cumsum_is_carried_across_row_blocks(monkeypatch):
    monkeypatch.setattr(numpy_backend, "BLOCK_ELEMENTS", 7)  # one row per block
    inp = pl.Population(6, init={"x": 0.0}, name="inp")
    out = pl.Population(4, ["y = I"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, "sanger", params={"eta": 0.05}, name="ff")])
    sim = pl.Simulation(network, trials=1, backend="numpy", dtype="float64")
    w0 = sim.get("ff.w")[0]
    x = np.arange(1.0, 7.0) / 6
    sim.run(1, inputs={"inp.x": x})
    y = w0 @ x
    lower = np.tril(np.outer(y, y))
    expected = w0 + 0.05 * (np.outer(y, x) - lower @ w0)
    np.testing.assert_allclose(sim.get("ff.w")[0], expected, rtol=1e-12)


def test_shared_weights_average_the_update_over_trials():
    network = oja_network(params={"eta": 0.1}, shared=True)
    sim = pl.Simulation(network, trials=4, backend="numpy", dtype="float64")
    w0 = sim.get("ff.w")
    assert w0.shape == (3, 5)
    x = np.random.default_rng(1).standard_normal((4, 5))
    sim.run(1, inputs={"inp.x": x[None]})
    y = x @ w0.T
    delta = np.mean(y[:, :, None] * (x[:, None, :] - y[:, :, None] * w0[None]), axis=0)
    np.testing.assert_allclose(sim.get("ff.w"), w0 + 0.1 * delta, rtol=1e-12)


def test_masked_synapses_stay_zero():
    mask = np.ones((3, 5), dtype=bool)
    mask[0, 1] = mask[2, 4] = False
    sim = pl.Simulation(oja_network(mask=mask), trials=2, backend="numpy")
    sim.run(10, inputs={"inp.x": np.ones(5)})
    w = sim.get("ff.w")
    assert np.all(w[:, ~mask] == 0) and np.all(w[:, mask] != 0)


def test_synapse_reductions_and_rule_unit_variables():
    inp = pl.Population(4, init={"x": 0.0}, name="inp")
    out = pl.Population(3, ["y = I"], name="out")
    rule = pl.Rule(
        [
            "r_post = sum_pre(w * x_pre)",
            "c_pre = sum_post(w * y_post)",
            "w += eta * (r_post * x_pre - c_pre * y_post)",
        ],
        params={"eta": 0.1},
    )
    sim = pl.Simulation(pl.Network([inp, out], [pl.Projection(inp, out, rule, name="p")]), backend="numpy", dtype="float64")
    w0 = sim.get("p.w")[0]
    x = np.array([0.5, -1.0, 2.0, 0.25])
    sim.run(1, inputs={"inp.x": x})
    y = w0 @ x
    r, c = w0 @ x, w0.T @ y
    np.testing.assert_allclose(sim.get("p.r_post")[0], r)
    np.testing.assert_allclose(sim.get("p.c_pre")[0], c)
    np.testing.assert_allclose(sim.get("p.w")[0], w0 + 0.1 * (np.outer(r, x) - np.outer(y, c)), rtol=1e-12)


def test_custom_stages_run_feedback_after_the_first_unit_stage():
    # a two-layer loop: errors use the fresh forward drive, values use feedback of those errors
    bottom = pl.Population(3, init={"x": 0.0}, name="bottom")
    top = pl.Population(2, {"errors": ["e = x - I"], "values": ["x += -0.5 * e"]}, init={"x": 1.0}, name="top")
    bottom_values = pl.Population(3, {"values": ["v = x + B"]}, init={"x": 0.0, "v": 0.0}, name="b2")
    proj = pl.Projection(bottom_values, top, None, source="x", feedback=("e", "B"), name="p", shared=True)
    network = pl.Network([bottom, top, bottom_values], [proj], stages=("drive", "errors", "feedback", "values", "plasticity"))
    assert [op.kind for op in network.program] == ["reset", "drive", "units", "reset", "feedback", "units", "units"]
    sim = pl.Simulation(network, backend="numpy", dtype="float64")
    w = sim.get("p.w")
    xb = np.array([1.0, 2.0, 3.0])
    sim.run(1, inputs={"b2.x": xb})
    e = 1.0 - w @ xb
    np.testing.assert_allclose(sim.get("top.e")[0], e)
    np.testing.assert_allclose(sim.get("top.x")[0], 1.0 - 0.5 * e)
    np.testing.assert_allclose(sim.get("b2.v")[0], xb + w.T @ e)


def test_population_reductions_and_functions():
    inp = pl.Population(4, init={"x": 0.0}, name="inp")
    out = pl.Population(
        3,
        ["p = softmax(beta * I)", "s = sum(p) + mean(I) - max(I) + min(I)", "h = where(I > 0, relu(I), sigmoid(I))"],
        params={"beta": 2.0},
        name="out",
    )
    sim = pl.Simulation(pl.Network([inp, out], [pl.Projection(inp, out, None, name="p")]), backend="numpy", dtype="float64")
    x = np.array([1.0, -2.0, 0.5, 3.0])
    sim.run(1, inputs={"inp.x": x})
    drive = sim.get("p.w")[0] @ x
    softmax = np.exp(2 * drive) / np.exp(2 * drive).sum()
    np.testing.assert_allclose(sim.get("out.p")[0], softmax)
    np.testing.assert_allclose(sim.get("out.s")[0], 1.0 + drive.mean() - drive.max() + drive.min())
    np.testing.assert_allclose(sim.get("out.h")[0], np.where(drive > 0, drive, 1 / (1 + np.exp(-drive))))


def test_modulator_inputs_gate_a_three_factor_rule():
    inp = pl.Population(3, init={"x": 1.0}, name="inp")
    out = pl.Population(2, ["y = I"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, "three_factor", name="p")])
    sim = pl.Simulation(network, trials=2, backend="numpy", dtype="float64")
    w0 = sim.get("p.w")
    sim.run(5, inputs={"p.m": np.array([[0.0, 1.0]])})
    w = sim.get("p.w")
    np.testing.assert_array_equal(w[0], w0[0])
    assert not np.allclose(w[1], w0[1])


def test_recording_dimensions_coordinates_and_provenance():
    sim = pl.Simulation(oja_network(), trials=2, backend="numpy", seed=7)
    x = np.random.default_rng(0).standard_normal((10, 2, 5))
    ds = sim.run(10, inputs={"inp.x": x}, record={"out.y": 1, "ff.w": 5})
    assert ds["out.y"].dims == ("time", "trial", "out_unit")
    assert ds["ff.w"].dims == ("time_5", "trial", "ff_post", "ff_pre")
    np.testing.assert_array_equal(ds["step"], np.arange(1, 11))
    np.testing.assert_array_equal(ds["step_5"], [5, 10])
    np.testing.assert_array_equal(ds["ff.w"].isel(time_5=-1), sim.get("ff.w"))
    for key in ("plasticity_version", "backend", "dtype", "seed", "equations", "config", "start_time", "end_time", "host"):
        assert key in ds.attrs
    assert ds.attrs["backend"] == "numpy" and ds.attrs["dtype"] == "float32" and ds.attrs["seed"] == "7"
    assert json.loads(ds.attrs["equations"])["ff"] == ["w += eta * y_post * (x_pre - y_post * w)"]
    assert json.loads(ds.attrs["config"])["network"]["projections"]["ff"]["rule"] == "oja"
    more = sim.run(4, inputs={"inp.x": x[:4]}, record={"ff.w": 5})
    assert more.sizes["time"] == 0  # steps 11..14 hold no multiple of 5


def test_inputs_from_arrays_callables_and_iterators_agree():
    x = np.random.default_rng(2).standard_normal((6, 5))
    runs = []
    for source in (x, lambda step, rng: x[step], iter(list(x))):
        sim = pl.Simulation(oja_network(), trials=3, backend="numpy", seed=1)
        runs.append(sim.run(6, inputs={"inp.x": source}, record={"out.y": 1})["out.y"].values)
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    sim = pl.Simulation(oja_network(), backend="numpy")
    with pytest.raises(pl.ConfigError, match="ran out of values at step 2"):
        sim.run(3, inputs={"inp.x": iter(list(x[:2]))})


def test_runs_are_seeded_and_trials_are_independent():
    def final(seed, trials=3):
        sim = pl.Simulation(oja_network(), trials=trials, backend="numpy", seed=seed)
        sim.run(20, inputs={"inp.x": lambda step, rng: rng.standard_normal((trials, 5))})
        return sim.get("ff.w")

    np.testing.assert_array_equal(final(5), final(5))
    assert not np.allclose(final(5), final(6))
    # each trial of a batch evolves exactly as that trial alone would
    x = np.random.default_rng(4).standard_normal((20, 3, 5))
    batch = pl.Simulation(oja_network(), trials=3, backend="numpy", dtype="float64", seed=0)
    w0 = batch.get("ff.w")
    batch.run(20, inputs={"inp.x": x})
    for trial in range(3):
        alone = pl.Simulation(oja_network(), trials=1, backend="numpy", dtype="float64")
        alone.set("ff.w", w0[trial : trial + 1])
        alone.run(20, inputs={"inp.x": x[:, trial : trial + 1]})
        np.testing.assert_allclose(alone.get("ff.w")[0], batch.get("ff.w")[trial], rtol=1e-12)


def test_divergence_names_variable_step_and_trial():
    inp = pl.Population(2, init={"x": 0.0}, name="inp")
    out = pl.Population(2, ["y = I"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, "hebb", params={"eta": 10.0, "decay": 0.0}, name="p")])
    sim = pl.Simulation(network, trials=3, backend="numpy", seed=0)
    x = np.zeros((200, 3, 2))
    x[:, 1] = 5.0
    with pytest.raises(pl.DivergenceError, match=r"the run diverged: p.w is NaN or infinite at step \d+, trial 1") as raised:
        sim.run(200, inputs={"inp.x": x}, record={"p.w": 1})
    assert raised.value.variable == "p.w" and raised.value.trial == 1 and 1 < raised.value.step < 200


def _blows_up_at(step: int) -> pl.Network:
    """``p.y`` turns -inf at ``step`` (log of 0) and ``p.x`` stays finite."""
    source = pl.Population(2, init={"u": 0.1}, name="u")
    population = pl.Population(
        3, ["y = where(t >= first_bad, log(t - t) * x, y + 0.001 * I)", "x = 0.5"], init={"y": 0.0, "x": 0.0},
        params={"first_bad": step}, name="p",
    )
    return pl.Network([source, population], [pl.Projection(source, population, None, name="w")])


_ENGINES = [(b, False) for b in available_backends()] + ([("numba", True)] if "numba" in available_backends() else [])


@pytest.mark.parametrize("backend, compiled", _ENGINES, ids=[f"{b}{'-compiled' if c else ''}" for b, c in _ENGINES])
@pytest.mark.parametrize("first_bad, record", [(10, None), (300, None), (300, {"p.x": 100})])
def test_a_divergence_stops_the_run_within_check_every_steps_and_bounds_the_step(backend, compiled, first_bad, record, monkeypatch):
    """A run that records nothing (or other variables) checks the whole state every CHECK_EVERY
    steps: it stops at the first check after the blow-up, not at its end, and names the steps
    between the last finite check and that one."""
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0 if compiled else 1e9)
    simulation = pl.Simulation(_blows_up_at(first_bad), backend=backend, trials=2, dtype="float64")
    with pytest.raises(pl.DivergenceError) as raised:
        simulation.run(2000, record=record) if record else simulation.advance(2000)
    error = raised.value
    assert (error.variable, error.trial) == ("p.y", 0)
    assert error.last_finite < first_bad <= error.step <= error.last_finite + CHECK_EVERY
    assert f"it arose in steps {error.last_finite + 1}-{error.step}" in str(error)
    assert simulation.steps_done == error.step  # stopped there
    if compiled and not record:
        assert simulation.engine.compiled_steps > 0


def test_numpy_step_makes_no_temporary_the_size_of_w():
    n = 1024
    sim = pl.Simulation(oja_network(n=n, k=n), trials=1, backend="numpy")
    x = np.ones(n, dtype=np.float32)
    sim.run(1, inputs={"inp.x": x})
    tracemalloc.start()
    sim.engine.step(1.0, {"inp.x": x[None]}, frozenset({"ff"}), None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    weight_bytes = n * n * 4
    assert peak < weight_bytes / 4, f"peak {peak} bytes during a step, W is {weight_bytes} bytes"


@pytest.mark.parametrize("backend", available_backends())
def test_building_and_recording_make_no_float64_copy_of_w(backend):
    """Initial weights are drawn into the state's dtype in blocks (the float64 values rounded, so a
    float32 network starts from its float64 twin's values), the engine takes the drawn arrays, and a
    record is read into its buffer: numpy's allocations peak near W (float32) plus the record, where
    a float64 draw and its copy made 4x W, recording 3.25x. tracemalloc sees numpy's memory, not torch's."""
    n = 1024  # W 4 MiB, a block of draws 0.5 MiB
    network = oja_network(n=n, k=n, init={"w": pl.init.normal(0.1)})
    pl.Simulation(oja_network(), backend=backend).run(1, record={"ff.w": 1})  # what a first run imports, before measuring
    tracemalloc.start()
    sim = pl.Simulation(network, trials=1, backend=backend, dtype="float32")
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    dataset = sim.run(1, record={"ff.w": 1})
    _, record_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    weight_bytes = n * n * 4
    assert build_peak < 1.5 * weight_bytes, f"building peaked at {build_peak / weight_bytes:.2f}x W"
    # W itself (traced since the build) and its record: 2x; a copy between them made 3x and more
    assert record_peak < 2.5 * weight_bytes, f"recording W peaked at {record_peak / weight_bytes:.2f}x W"
    twin = pl.Simulation(network, trials=1, backend="numpy", dtype="float64")
    np.testing.assert_array_equal(pl.Simulation(network, trials=1, backend=backend, dtype="float32").get("ff.w"),
                                  twin.get("ff.w").astype(np.float32))
    assert dataset["ff.w"].dtype == np.float32


@pytest.mark.parametrize("backend", available_backends())
def test_set_broadcasts_numbers_rows_and_arrays_and_names_a_bad_shape(backend):
    """``set`` hands the engine the value unbroadcast (each backend broadcasts on assignment): a
    number, a row for every trial, a float32 or integer array, each read back broadcast; a value
    that does not broadcast to the variable's shape (or would enlarge it) is refused by name."""
    sim = pl.Simulation(oja_network(), trials=3, backend=backend, dtype="float64")
    sim.set("inp.x", 2.5)
    np.testing.assert_array_equal(sim.get("inp.x"), np.full((3, 5), 2.5))
    sim.set("inp.x", np.arange(5))
    np.testing.assert_array_equal(sim.get("inp.x"), np.tile(np.arange(5.0), (3, 1)))
    values = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    sim.set("inp.x", values)
    np.testing.assert_array_equal(sim.get("inp.x"), values.astype(np.float64))
    sim.set("ff.w", np.ones((3, 5)))  # one matrix for every trial
    np.testing.assert_array_equal(sim.get("ff.w"), np.ones((3, 3, 5)))
    for bad in (np.zeros(4), np.zeros((2, 5)), np.zeros((2, 3, 5))):
        with pytest.raises(pl.ConfigError, match=rf"value for 'inp.x' has shape \({bad.shape[0]},.*does not broadcast to \(3, 5\)"):
            sim.set("inp.x", bad)


def _gated_network():
    """``y`` follows ``g * I`` while ``gate > 0``, else keeps its value: two population parameters."""
    inp = pl.Population(4, init={"x": 0.0}, name="inp")
    out = pl.Population(3, ["y = where(gate > 0, g * I, y)"], init={"y": 0.0}, params={"g": 2.0, "gate": 1.0}, name="out")
    return pl.Network([inp, out], [pl.Projection(inp, out, None, source="x", target="I", name="ff")])


@pytest.mark.parametrize("backend", available_backends())
def test_population_parameters_set_between_runs_change_every_later_step(backend, monkeypatch):
    """A parameter set with ``set`` holds from the next step on, in steps taken one by one and in
    numba's compiled runs alike; ``get`` and ``params`` read it back, and a recorded run keeps the
    values it ran with."""
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0)  # numba runs compiled at once
    sim = pl.Simulation(_gated_network(), trials=2, backend=backend, dtype="float64", seed=1)
    x = np.arange(8.0).reshape(2, 4)
    sim.set("inp.x", x)
    drive = np.einsum("tij,tj->ti", sim.get("ff.w"), x)  # weights per trial
    sim.advance(3)
    np.testing.assert_allclose(sim.get("out.y"), 2.0 * drive, rtol=1e-12)
    sim.set("out.g", 0.5)
    sim.advance(3)
    np.testing.assert_allclose(sim.get("out.y"), 0.5 * drive, rtol=1e-12)
    sim.set("out.gate", np.float32(0.0))
    sim.set("inp.x", 0.0)
    dataset = sim.run(2, record={"out.y": 1})
    np.testing.assert_allclose(dataset["out.y"].values[-1], 0.5 * drive, rtol=1e-12)  # held while the gate is shut
    assert sim.params == {"out.g": 0.5, "out.gate": 0.0}
    assert sim.get("out.g").shape == () and float(sim.get("out.g")) == 0.5
    assert json.loads(dataset.attrs["population_params"]) == {"out.g": 0.5, "out.gate": 0.0}


def test_parameters_take_finite_numbers_and_are_not_recorded():
    sim = pl.Simulation(_gated_network(), backend="numpy")
    for bad in (np.nan, np.inf, np.ones(3), "1", True):
        with pytest.raises(pl.ConfigError, match="parameter 'out.g' takes a finite number"):
            sim.set("out.g", bad)
    assert sim.params["out.g"] == 2.0
    with pytest.raises(pl.ConfigError, match="'out.gate' is a parameter, not a state variable"):
        sim.run(1, record={"out.gate": 1})
    with pytest.raises(pl.ConfigError, match="unknown variable 'out.q'.*valid parameters: out.g, out.gate"):
        sim.set("out.q", 1.0)


def _staged_network():
    """Two populations and a learning projection with feedback, in custom stages."""
    bottom = pl.Population(5, {"rates": ["r = tanh(x)"], "values": ["x += 0.1 * (B - x)"]}, init={"x": 0.0, "r": 0.0}, name="bottom")
    top = pl.Population(4, {"errors": ["e = y - I"], "values": ["y += -0.2 * e"]}, init={"y": 0.5, "e": 0.0}, name="top")
    projection = pl.Projection(bottom, top, "hebb", source="r", target="I", feedback=("e", "B"), shared=True, name="p")
    return pl.Network([bottom, top], [projection], stages=("rates", "drive", "errors", "feedback", "plasticity", "values"))


@pytest.mark.parametrize("backend,compiled", [(b, c) for b in available_backends() for c in ((False, True) if b == "numba" else (False,))])
def test_a_run_of_a_subset_of_stages_skips_the_others_on_every_backend(backend, compiled, monkeypatch):
    """``stages`` runs only the named stages, in the network's order; what the others write keeps its
    value. Every backend (numba stepping and compiled) agrees with numpy over runs that alternate
    subsets and full steps."""
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0 if compiled else 1e9)
    results = {}
    for name in ("numpy", backend):
        sim = pl.Simulation(_staged_network(), trials=3, backend=name, dtype="float64", seed=2)
        sim.set("bottom.x", np.linspace(-1.0, 1.0, 15).reshape(3, 5))
        before = {key: sim.get(key) for key in ("top.e", "bottom.x", "bottom.B", "p.w")}
        sim.advance(2, plastic=False, stages=("rates", "drive", "values"))
        for key in ("top.e", "bottom.B", "p.w"):  # errors, feedback and plasticity did not run
            np.testing.assert_array_equal(sim.get(key), before[key], err_msg=key)
        x = before["bottom.x"] * 0.9  # values ran twice, with the stale feedback B = 0: the second from x * 0.9
        np.testing.assert_allclose(sim.get("bottom.x"), x * 0.9, rtol=1e-12)
        np.testing.assert_allclose(sim.get("top.I"), np.tanh(x) @ sim.get("p.w").T, rtol=1e-10)  # rates, then drive
        sim.advance(3)
        sim.advance(2, stages=["rates", "drive", "errors", "plasticity"])
        dataset = sim.run(2, stages=("feedback", "values"), record={"bottom.x": 1})
        assert json.loads(dataset.attrs["stages"]) == ["feedback", "values"]
        if name == "numba" and compiled:  # both subsets ran as their own compiled programs
            assert {frozenset({"rates", "drive", "values"}), frozenset({"rates", "drive", "errors", "plasticity"})} <= set(sim.engine._programs)
            assert sim.engine.compiled_steps == 7
        results[name] = {key: sim.get(key) for key in sim.shapes}
    for key, value in results["numpy"].items():
        np.testing.assert_allclose(results[backend][key], value, rtol=1e-10, atol=1e-12, err_msg=key)


def test_stages_must_name_the_networks_stages():
    sim = pl.Simulation(_staged_network(), backend="numpy")
    for bad in (("drive", "learn"), (), "units"):
        with pytest.raises(pl.ConfigError, match=r"stages must name one or more of the network's stages \(rates, drive, errors"):
            sim.advance(1, stages=bad)
    assert "stages" not in sim.run(1, stages=list(sim.network.stages), record={"top.y": 1}).attrs  # all of them: a plain run

"""Work the engines skip or do faster, against the numpy reference: cached drive contributions
(reused while neither the source nor the weights were written), the numba backend's compiled
step programs (runs without rules, inputs or recording as one call), the in-place finiteness
check, and the numba backend's vectorisable float32 tanh."""

from __future__ import annotations

import numpy as np
import pytest

import plasticity as pl
from plasticity.errors import DivergenceError
from plasticity.simulation import COMPILED_CHUNK

#: numba compiles a kernel per network and a step program per compiled run: minutes on a cold cache.
pytestmark = pytest.mark.slow

BACKENDS = ["numpy", "numba", "torch"]


def layered_network(shared: bool) -> pl.Network:
    """inp -> hid -> out with custom stages; ``hid.fx`` is rewritten each step only while ``hid.move`` > 0,
    and the rule reads a modulator so that learning can be switched on and off by projection."""
    stages = ("rates", "drive", "values", "plasticity")
    inp = pl.Population(6, init={"x": 0.0}, name="inp")
    hid = pl.Population(
        5,
        {"rates": ["fx = tanh(v)"], "values": ["v += 0.1 * move * (I - v)"]},
        init={"v": 0.0, "fx": 0.0, "move": 1.0},
        name="hid",
    )
    out = pl.Population(4, {"values": ["y = sigmoid(I)"]}, init={"y": 0.0}, name="out")
    rule = pl.Rule(["w += eta * y_post * (x_pre - w)"], params={"eta": 0.05}, name="leaky_hebb")
    rule_h = pl.Rule(["w += eta * y_post * (fx_pre - w)"], params={"eta": 0.05}, name="leaky_hebb_h")
    first = pl.Projection(inp, hid, pl.Rule(["w += eta * fx_post * x_pre"], params={"eta": 0.01}, name="h"),
                          source="x", target="I", shared=shared, name="p1")
    second = pl.Projection(hid, out, rule_h, source="fx", target="I", shared=shared, name="p2")
    third = pl.Projection(inp, out, rule, source="x", target="I", shared=shared, name="p3")
    return pl.Network([inp, hid, out], [first, second, third], stages=stages)


def phases(simulation: pl.Simulation, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Phases that make the cache hit (clamped input, frozen layer, no learning) and miss (new input,
    set(), learning), returning the full state after each."""
    trials = simulation.trials
    states = []

    def snapshot():
        states.append({key: simulation.get(key) for key in simulation.shapes})

    simulation.set("inp.x", rng.normal(size=(trials, 6)))
    simulation.advance(5, plastic=False)  # inp.x constant: p1 and p3 hit after the first step
    snapshot()
    simulation.set("hid.I", 123.0)  # a summed input set from outside is made again, though its drive hits
    simulation.advance(2, plastic=False)
    snapshot()
    simulation.set("hid.move", 0.0)
    simulation.advance(4, plastic=False)  # hid.fx rewritten by its rates stage: p2 misses
    snapshot()
    simulation.advance(3, plastic={"p2"})  # p2 learns: its weights change, p1 and p3 still hit
    snapshot()
    simulation.set("p1.w", simulation.get("p1.w") * 0.5)  # set() invalidates
    simulation.advance(2, plastic=False)
    snapshot()
    simulation.advance(3, inputs={"inp.x": rng.normal(size=(3, trials, 6))}, plastic=True)  # inputs every step
    snapshot()
    simulation.advance(3, plastic=False)  # the last input stays: hits again
    snapshot()
    return states


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_cached_drives_match_numpy(backend, shared):
    results = {}
    engines = {}
    for name in ("numpy", backend):
        simulation = pl.Simulation(layered_network(shared), trials=3, backend=name, seed=4, dtype="float64")
        results[name] = phases(simulation, np.random.default_rng(9))
        engines[name] = simulation.engine
    for number, (expected, actual) in enumerate(zip(results["numpy"], results[backend])):
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, atol=1e-12, err_msg=f"phase {number}: {key}")
    engine = engines[backend]
    # 22 steps x 3 drives: p1 and p3 recompute after each set()/new input and when learning
    # changed their weights; everything else is reused
    assert 0 < engine.cached_drives < 66


def test_cached_drive_follows_weight_updates():
    """A plastic projection's drive is never reused across its own update."""
    simulation = pl.Simulation(layered_network(True), trials=2, backend="numba", seed=1, dtype="float64")
    reference = pl.Simulation(layered_network(True), trials=2, backend="numpy", seed=1, dtype="float64")
    for sim in (simulation, reference):
        sim.set("inp.x", np.linspace(-1, 1, 12).reshape(2, 6))
    before = simulation.engine.cached_drives
    simulation.advance(6, plastic=True)
    reference.advance(6, plastic=True)
    # every projection learns each step (and hid.fx is rewritten): no drive may be reused
    assert simulation.engine.cached_drives == before
    for key in simulation.shapes:
        np.testing.assert_allclose(simulation.get(key), reference.get(key), rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.fixture
def compile_at_once(monkeypatch):
    """numba engines compile their step program at the first run that can use it."""
    from plasticity.backends import numba_backend

    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0)


@pytest.fixture
def split_runs(request, monkeypatch):
    """With ``split`` (the test's parameter) true, compiled runs without learning split their trials
    into blocks on two threads whatever their size; else never."""
    import numba

    from plasticity.backends import blas, numba_backend

    if not request.getfixturevalue("split"):
        monkeypatch.setattr(numba_backend, "SPLIT_MIN_WORK", float("inf"))
        yield False
        return
    if numba.config.NUMBA_NUM_THREADS < 2 or not blas.THREADS_PER_CALL:
        pytest.skip("splitting trials needs two numba threads and MKL's per-call thread count")
    monkeypatch.setattr(numba_backend, "SPLIT_MIN_WORK", 0)
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    yield True
    numba.set_num_threads(threads)


def test_step_program_compiled_after_enough_time_stepping(monkeypatch):
    """An engine compiles once it has spent COMPILE_AFTER_SECONDS in steps taken one by one; a long
    run goes in chunks, step by step until then, compiled from the next chunk on."""
    from plasticity.backends import numba_backend

    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", float("inf"))
    simulation = pl.Simulation(layered_network(True), trials=3, backend="numba", seed=0)
    engine = simulation.engine
    simulation.advance(COMPILED_CHUNK + 4, plastic=False)
    simulation.advance(5, plastic=True, inputs={"inp.x": np.ones(6)})
    assert engine.compiled_steps == 0 and engine.stepped_seconds > 0
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0)
    simulation.advance(3, plastic=False, inputs={"inp.x": np.ones(6)})  # with inputs: never compiled
    assert engine.compiled_steps == 0
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", engine.stepped_seconds + 1e-9)
    simulation.advance(3 * COMPILED_CHUNK + 7, plastic=True)  # its first chunk crosses the threshold
    assert engine.compiled_steps == 2 * COMPILED_CHUNK + 7
    assert simulation.steps_done == 4 * COMPILED_CHUNK + 19


def test_time_compiling_kernels_is_not_time_stepping(monkeypatch, tmp_path):
    """numba compiles a kernel on its first call: steps that compiled kernels (in a fresh kernel
    cache, seconds) do not count towards COMPILE_AFTER_SECONDS, which is meant to weigh the time
    steps take against the price of compiling a step program. A fake clock makes every step take
    one second (a slow step), so what is counted does not depend on the machine's speed."""
    from plasticity.backends import numba_backend

    class OneSecondPerStep:
        """``perf_counter`` advancing by a second per reading (a step reads it at its start and end)."""

        def __init__(self):
            self.now = 0.0

        def perf_counter(self):
            self.now += 1.0
            return self.now

    monkeypatch.setenv("PLASTICITY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba_backend, "time", OneSecondPerStep())
    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", float("inf"))  # steps stay steps
    pop = pl.Population(3, ["y = 0.5 * y + 0.25 * tanh(x) + 0.125"], init={"x": 0.3, "y": 0.0}, name="fresh")
    simulation = pl.Simulation(pl.Network([pop], []), trials=2, backend="numba", seed=0)
    simulation.advance(1)  # compiles the population's kernel and the finiteness check: not counted
    assert simulation.engine.stepped_seconds == 0.0
    simulation.advance(1)  # may find a kernel the end of the first run compiled (the finiteness
    # check, unless an earlier test in this process compiled it): then not counted either
    assert simulation.engine.stepped_seconds in (0.0, 1.0)
    counted = simulation.engine.stepped_seconds
    simulation.advance(20)  # nothing left to compile: every (fake) second counted
    assert simulation.engine.stepped_seconds == counted + 20.0
    np.testing.assert_allclose(simulation.get("fresh.y")[0, 0], (0.25 * np.tanh(0.3) + 0.125) / 0.5, rtol=1e-5)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("shared,dtype", [(True, "float32"), (False, "float64")])  # a program compiles in seconds
def test_compiled_runs_equal_step_by_step(shared, dtype, split, compile_at_once, split_runs):
    """A numba run without inputs or recording is one compiled call. It leaves the state, write
    counts and drive reuse that the same steps taken one by one leave: exactly with shared
    weights; to rounding with separate weights per trial, whose learning step-by-step also
    precomputes the next drive (summed in another order). With ``split``, every run without
    learning splits the 3 trials into blocks of 1 and 2 on two threads: equal to rounding (BLAS
    may sum a product of one row in another order than the same row among others)."""
    simulations = {}
    for compiled in (True, False):
        simulation = pl.Simulation(layered_network(shared), trials=3, backend="numba", seed=4, dtype=dtype)
        if not compiled:
            simulation.engine.run_compiled = lambda *args: False
        simulations[compiled] = (simulation, phases(simulation, np.random.default_rng(9)))
    (fast, fast_states), (slow, slow_states) = simulations[True], simulations[False]
    tolerance = 0.0 if shared and not split else {"float32": 1e-6, "float64": 1e-13}[dtype]
    for number, (expected, actual) in enumerate(zip(slow_states, fast_states)):
        for key in expected:
            np.testing.assert_allclose(actual[key], expected[key], rtol=tolerance, atol=tolerance, err_msg=f"phase {number}: {key}")
    # every phase but the one with inputs: 5 + 2 + 4 + 3 + 2 + 3 steps
    assert fast.engine.compiled_steps == 19 and slow.engine.compiled_steps == 0
    if shared:
        assert fast.engine.cached_drives == slow.engine.cached_drives > 0
    assert fast.engine._version == slow.engine._version
    assert fast.steps_done == slow.steps_done == 22
    assert fast.engine.split_runs == (5 if split else 0)  # the phases without learning or inputs


def test_compiled_runs_only_without_inputs_or_recording(compile_at_once):
    simulation = pl.Simulation(layered_network(True), trials=3, backend="numba", seed=0)
    engine = simulation.engine
    simulation.advance(2, plastic=False, inputs={"inp.x": np.ones(6)})
    simulation.run(2, plastic=False, record={"out.y": 1})
    assert engine.compiled_steps == 0
    simulation.advance(2, plastic={"p1"})
    simulation.run(3, plastic=False)
    assert engine.compiled_steps == 5
    assert simulation.steps_done == 9 and simulation.t == 9.0
    simulation.advance(2 * COMPILED_CHUNK + 3, plastic=True)  # in chunks, so that Ctrl-C can stop it between them
    assert engine.compiled_steps == 5 + 2 * COMPILED_CHUNK + 3
    assert simulation.steps_done == 12 + 2 * COMPILED_CHUNK


@pytest.mark.parametrize("case", ["feedback per trial", "population reductions", "masked shared bcm"])
def test_compiled_programs_agree_with_numpy(case, compile_at_once):
    """Compiled programs on a network with feedback through weights per trial, one with population
    reductions and time, and masked shared weights with a rule that owns a variable: after runs
    without inputs, with and without learning, the state is the numpy reference's."""
    from test_numba_backend import MASK, feedback_network, population_network, rule_network

    from plasticity.rules import get_rule

    make = {
        "feedback per trial": feedback_network,
        "population reductions": population_network,
        "masked shared bcm": lambda: rule_network(get_rule("bcm"), shared=True, mask=MASK),
    }[case]
    states = {}
    for backend in ("numpy", "numba"):
        network, keys = make()
        simulation = pl.Simulation(network, trials=3, backend=backend, seed=2, dtype="float64")
        rng = np.random.default_rng(5)
        for key in keys:
            simulation.set(key, rng.normal(size=simulation.shapes[key]))
        simulation.advance(6, plastic=False)
        simulation.advance(5, plastic=True)
        states[backend] = {key: simulation.get(key) for key in simulation.shapes}
    assert simulation.engine.compiled_steps == 11
    for key, expected in states["numpy"].items():
        np.testing.assert_allclose(states["numba"][key], expected, rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(
    "mode,dtype,split", [("pc", "float32", False), ("zil", "float32", False), ("fpa", "float64", False),
                         ("pc", "float32", True), ("fpa", "float64", True)],
)
def test_compiled_program_fuses_stages(mode, dtype, split, compile_at_once, split_runs):
    """In predictive coding each layer's errors and values stages run as one pass, joined by the next
    step's rates where no product or rule reads the rates in between; inside a step the rates stay
    apart from the errors (the drive reads the one and writes what the other reads). Training with
    the compiled program equals stepping from Python exactly, and to rounding with the sweep and
    inference of each batch split into blocks of 3 trials on two threads (``split``)."""
    from plasticity.networks.predictive_coding import PredictiveCodingModel

    rng = np.random.default_rng(0)
    data, labels = rng.normal(size=(6, 12)), np.eye(4)[rng.integers(0, 4, 6)]
    models = []
    for compiled in (True, False):
        model = PredictiveCodingModel([12, 9, 7, 4], mode=mode, batch=6, dtype=dtype, seed=3)
        if not compiled:
            model.sim.engine.run_compiled = lambda *args: False
        for _ in range(3):
            model.train_batch(data, labels, 5)
        models.append(model)
    fast, slow = models
    tolerance = {"float32": 1e-5, "float64": 1e-12}[dtype] if split else 0.0  # rounding (see the test above)
    for name, weights in slow.weights().items():
        np.testing.assert_allclose(fast.weights()[name], weights, rtol=tolerance, atol=tolerance, err_msg=name)
    expected = {("layer3", ("errors", "values"))}
    for layer in ("layer1", "layer2"):  # the last step of a run ends without the next step's rates
        expected |= {(layer, ("errors", "values")), (layer, ("errors", "values", "rates"))}
    assert set(fast.sim.engine._programs[None].fused) == expected
    # every summed input is made by drives alone (weights and bias); layer1's reuse both while the input is clamped
    assert set(fast.sim.engine._programs[None].kept) == {"layer1.mu", "layer2.mu", "layer3.mu"}
    assert fast.sim.engine.compiled_steps > 0
    assert (fast.sim.engine.split_runs > 0) == split


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_in_place(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    simulation = pl.Simulation(layered_network(False), trials=2, backend=backend, seed=0, dtype="float64")
    engine = simulation.engine
    assert engine.nonfinite(simulation.shapes) is None
    for bad in (np.nan, np.inf, -np.inf):
        weights = simulation.get("p2.w")
        weights[1, 3, 2] = bad
        simulation.set("p2.w", weights)
        assert engine.nonfinite(simulation.shapes) == "p2.w"
        assert engine.nonfinite(["p1.w", "inp.x"]) is None
        with pytest.raises(DivergenceError) as error:
            simulation.advance(0)
        assert error.value.variable == "p2.w"
        simulation.set("p2.w", np.zeros_like(weights))
        assert engine.nonfinite(simulation.shapes) is None
    weights = simulation.get("p2.w")
    weights[0, 0, 0] = 1e300  # finite in float64, infinite if narrowed to float32
    simulation.set("p2.w", weights)
    assert engine.nonfinite(simulation.shapes) is None
    simulation.set("p2.w", np.zeros_like(weights))
    simulation.set("inp.x", np.nan)  # a number set: checked as stored (numba), or scanned
    assert engine.nonfinite(simulation.shapes) == "inp.x"
    simulation.set("inp.x", 0.5)
    assert engine.nonfinite(simulation.shapes) is None
    narrow = pl.Simulation(layered_network(False), trials=2, backend=backend, seed=0, dtype="float32")
    with np.errstate(over="ignore"):
        narrow.set("inp.x", 1e300)  # finite as given, infinite once stored in float32
    assert narrow.engine.nonfinite(narrow.shapes) == "inp.x"
    simulation.advance(2)  # a kernel writing NaN is seen although the array was verified finite before
    simulation.set("hid.v", np.full((2, 5), np.inf))
    with pytest.raises(DivergenceError):
        simulation.advance(1)


@pytest.mark.parametrize("split", [False, True])
def test_compiled_runs_check_what_they_write(split, compile_at_once, split_runs):
    """A compiled run checks the arrays it wrote for NaN and infinity inside the call: a NaN it
    computes stops the run by name; weights a run without learning only reads are not checked
    there (nor marked checked), so a NaN set into them beforehand is still found after the run.
    Split into blocks of trials (``split``), each block checks its own rows."""
    simulation = pl.Simulation(layered_network(True), trials=2, backend="numba", seed=0, dtype="float64")
    engine = simulation.engine
    simulation.set("inp.x", 1.0)
    simulation.advance(3)
    assert engine.compiled_steps == 3
    weights = simulation.get("p2.w")
    weights[1, 2] = np.nan
    simulation.set("p2.w", weights)
    with pytest.raises(DivergenceError) as error:
        simulation.advance(2, plastic=False)
    assert error.value.variable in ("out.y", "p2.w") and engine.compiled_steps == 5  # the NaN reached out.y
    assert engine.nonfinite(["p2.w"]) == "p2.w"
    simulation.set("p2.w", 0.0)
    simulation.advance(2, plastic=False)
    simulation.set("hid.v", np.inf)  # tanh(inf) is finite; v's update inf - inf is not
    with pytest.raises(DivergenceError) as error:
        simulation.advance(2, plastic=False)
    assert error.value.variable == "hid.v" and engine.compiled_steps == 9


def test_float32_tanh_and_sigmoid_accuracy():
    """The numba backend's float32 tanh (a rational function) stays within 5 ulp of the exact value;
    sigmoid, built on it, agrees with the reference as closely."""
    x = np.concatenate([np.linspace(-20, 20, 4001), np.logspace(-30, 1.2, 500), -np.logspace(-30, 1.2, 500)])
    n = len(x)
    pop = pl.Population(n, ["y = tanh(x)", "z = sigmoid(x)"], init={"x": 0.0}, name="p")
    out = {}
    for backend in ("numpy", "numba"):
        simulation = pl.Simulation(pl.Network([pop], []), trials=1, backend=backend, seed=0, dtype="float32")
        simulation.set("p.x", x[None, :])
        simulation.advance(1)
        out[backend] = simulation.get("p.y")[0], simulation.get("p.z")[0]
    x32 = x.astype(np.float32).astype(np.float64)
    exact = np.tanh(x32)
    ulp = np.spacing(np.abs(exact).astype(np.float32).clip(np.float32(1e-38))).astype(np.float64)
    assert np.all(np.abs(out["numba"][0] - exact) <= 5 * ulp)
    assert np.all(np.abs(out["numba"][0]) <= 1.0)
    assert out["numba"][0][x32 > 9].min() == 1.0 and out["numba"][0][x32 < -9].max() == -1.0
    np.testing.assert_allclose(out["numba"][1], out["numpy"][1], rtol=2e-6, atol=3e-7)


def test_float32_tanh_propagates_nan():
    pop = pl.Population(3, ["y = tanh(x)"], init={"x": 0.0}, name="p")
    simulation = pl.Simulation(pl.Network([pop], []), trials=1, backend="numba", seed=0, dtype="float32")
    simulation.set("p.x", np.array([[0.5, np.nan, 2.0]]))
    with pytest.raises(DivergenceError):
        simulation.advance(1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_population_equations_match_numpy(dtype):
    """Consecutive equations share one loop over the units; one with a reduction waits for all units
    of those before it. Each equation sees the previous ones' results, as in the reference."""
    equations = ["a = tanh(x) * 2", "b = a + x", "x = b - a * 0.5", "c = sum(x * a) / n_units + b", "d = c * x - max(a)"]
    results = {}
    for backend in ("numpy", "numba"):
        pop = pl.Population(9, equations, init={"x": 0.0, "a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}, params={"n_units": 9.0}, name="p")
        simulation = pl.Simulation(pl.Network([pop], []), trials=2, backend=backend, seed=0, dtype=dtype)
        simulation.set("p.x", np.linspace(-0.9, 0.9, 18).reshape(2, 9))
        simulation.advance(3)
        results[backend] = {key: simulation.get(key) for key in simulation.shapes}
    tolerance = {"float32": 2e-6, "float64": 1e-12}[dtype]
    for key, expected in results["numpy"].items():
        np.testing.assert_allclose(results["numba"][key], expected, rtol=tolerance, atol=tolerance, err_msg=key)


# short runs: the next drive precomputed across calls, weights checked through it ----------------


def _oja(backend: str, n: int = 40, m: int = 24, trials: int = 2) -> pl.Simulation:
    inp = pl.Population(n, init={"x": pl.init.normal(1.0)}, name="inp")
    out = pl.Population(m, ["y = I"], name="out")
    projection = pl.Projection(inp, out, pl.Rule(["w += eta * y_post * (x_pre - y_post * w)"], params={"eta": 0.01}, name="oja"),
                               init={"w": pl.init.normal(0.1)}, name="ff")
    return pl.Simulation(pl.Network([inp, out], [projection]), trials=trials, backend=backend, seed=3, dtype="float64")


def _advance_beside_reference(fast, reference, calls, counter, keys) -> list[int]:
    """Advance both simulations by each call's (inputs, steps), checking ``keys`` equal after each;
    how much ``counter()`` grew during each call."""
    taken = []
    for inputs, steps in calls:
        before = counter()
        for simulation in (fast, reference):
            simulation.advance(steps, inputs=inputs)
        taken.append(counter() - before)
        for key in keys:
            np.testing.assert_allclose(fast.get(key), reference.get(key), rtol=1e-12, atol=1e-12, err_msg=key)
    return taken


def test_a_run_precomputes_the_next_runs_drive_unless_its_input_differs():
    """The last step of a run precomputes the next drive from the source as it is: the next run takes
    it when nothing wrote the source or its input holds the same values, else computes the drive
    (every case the numpy reference's state)."""
    patterns = np.random.default_rng(0).normal(size=(3, 1, 2, 40))  # (1, trials, n): the same every step
    fast, reference = _oja("numba"), _oja("numpy")
    calls = [({}, 4), ({"inp.x": patterns[0]}, 3), ({"inp.x": patterns[0]}, 2), ({"inp.x": patterns[1]}, 3), ({}, 1), ({}, 5)]
    taken = _advance_beside_reference(fast, reference, calls, lambda: fast.engine.fused_steps, ("ff.w", "out.y", "out.I"))
    # the first drive of a run is precomputed except at the very start, after a new pattern and after set()
    assert taken == [3, 2, 2, 2, 1, 5]
    fast.set("inp.x", patterns[2, 0])
    before = fast.engine.fused_steps
    fast.advance(2)
    assert fast.engine.fused_steps - before == 1


def test_weights_are_checked_through_the_precomputed_drive(monkeypatch):
    """A run of a fused projection checks its weights by the (trials, post) drive it summed over them,
    not by a pass over the weights; a drive that is not finite sends the check to the weights, which
    then decide (finite here: an overflowing product), and a NaN weight is found with its trial."""
    from plasticity.backends import numba_backend

    scanned = []

    class Counted:  # the check, noting the size of what it scans (and a dispatcher's overloads, which the engine counts)
        def __init__(self, check):
            self.check, self.overloads = check, check.overloads

        def __call__(self, values):
            scanned.append(values.size)
            return self.check(values)

    monkeypatch.setattr(numba_backend, "_all_finite", Counted(numba_backend._all_finite))
    simulation = _oja("numba")
    simulation.advance(3)
    simulation.advance(2)
    assert 40 * 24 * 2 not in scanned and scanned  # what was checked was smaller than the weights
    engine = simulation.engine
    drive, _ = engine._proofs["ff.w"]
    drive[0, 0] = np.inf  # as if the drive overflowed: the weights are scanned and are finite
    engine._verified.pop("ff.w")
    scanned.clear()
    assert engine.nonfinite(["ff.w"]) is None and 40 * 24 * 2 in scanned
    weights = simulation.get("ff.w")
    weights[1, 5, 7] = np.nan
    simulation.set("ff.w", weights)
    with pytest.raises(DivergenceError) as error:
        simulation.advance(2)
    assert (error.value.variable, error.value.trial) in (("ff.w", 1), ("out.I", 1), ("out.y", 1))


def test_torch_weights_are_checked_through_the_drive_the_next_run_takes(monkeypatch):
    """torch: the end-of-run check proves the weights finite by the drive of the next step, computed
    from the source as it is (no pass over W), which the next run takes when nothing wrote the source
    or its input holds the same values; a source with a zero, or a drive that is not finite, sends the
    check to the weights; the state stays the numpy reference's."""
    pytest.importorskip("torch")
    from plasticity.backends import torch_backend

    # the eager update on every device: a compiled one computes the next drive itself
    # (test_torch_backend.py::test_compiled_update_computes_the_next_drive)
    monkeypatch.setenv("PLASTICITY_TORCH_COMPILE", "0")
    scanned = []
    finite = torch_backend._finite
    monkeypatch.setattr(torch_backend, "_finite", lambda array: scanned.append(array.numel()) or finite(array))
    patterns = np.random.default_rng(0).normal(size=(2, 1, 2, 40))
    fast, reference = _oja("torch"), _oja("numpy")
    calls = [({}, 4), ({"inp.x": patterns[0]}, 3), ({"inp.x": patterns[0]}, 2), ({"inp.x": patterns[1]}, 3), ({}, 1)]
    taken = _advance_beside_reference(fast, reference, calls, lambda: fast.engine.cached_drives,
                                      ("ff.w", "out.y", "out.I", "inp.x"))
    assert taken == [0, 0, 1, 0, 1]
    assert scanned and 40 * 24 * 2 not in scanned
    zero = patterns[1].copy()
    zero[0, 1, 3] = 0.0  # a product with it could be skipped: the weights are scanned
    fast.advance(1, inputs={"inp.x": zero})
    assert 40 * 24 * 2 in scanned
    weights = fast.get("ff.w")
    weights[1, 5, 7] = np.nan
    fast.set("ff.w", weights)
    with pytest.raises(DivergenceError) as error:
        fast.advance(0)
    assert (error.value.variable, error.value.trial) == ("ff.w", 1)


@pytest.mark.parametrize("first_call", [1, 3])
def test_weights_diverging_in_short_runs_are_found_like_in_one_run(first_call):
    """Hebbian weights that blow up in trial 1: calls of a few steps stop with the same
    DivergenceError (variable, trial, step) as the numpy reference."""
    errors = {}
    for backend in ("numpy", "numba", "torch"):
        inp = pl.Population(3, init={"x": 0.0}, name="inp")
        out = pl.Population(3, ["y = I"], name="out")
        network = pl.Network([inp, out], [pl.Projection(inp, out, "hebb", params={"eta": 10.0, "decay": 0.0}, name="p")])
        simulation = pl.Simulation(network, trials=2, backend=backend, seed=0, dtype="float32")
        x = np.zeros((1, 2, 3))
        x[:, 1] = 5.0
        simulation.advance(first_call, inputs={"inp.x": x})
        with pytest.raises(DivergenceError) as raised:
            for _ in range(100):
                simulation.advance(3, inputs={"inp.x": x})
        errors[backend] = (raised.value.variable, raised.value.trial, raised.value.step, raised.value.last_finite)
    assert errors["numba"] == errors["numpy"] == errors["torch"] and errors["numba"][1] == 1

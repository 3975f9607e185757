"""The numba backend against the numpy reference: every built-in rule, every node type,
masks, shared weights, custom stages with feedback; the fused pass; the disk cache; no
temporaries the size of W inside a step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import plasticity as pl
from plasticity.backends import numba_backend, numba_cache, numba_codegen, numba_plasticity
from plasticity.rules.storage import STORAGE_RULES
from plasticity.rules import get_rule, list_rules

#: Compiling this file's kernels takes minutes on a cold cache (about 160 s on 2 cores; 20 s warm).
pytestmark = pytest.mark.slow

STEPS = 100
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = np.abs(expected).max()
    return float(np.abs(actual - expected).max() / (scale if scale > 0 else 1.0))


def rule_network(rule, *, n_pre=7, n_post=5, shared=False, mask=None):
    """Pre units driven by inputs; post units ``y = tanh(h)`` plus any other variable as an input."""
    pre_vars = sorted(rule.unit_reads("pre")) or ["x"]
    post_vars = sorted(rule.unit_reads("post"))
    pre = pl.Population(n_pre, init={var: 0.0 for var in pre_vars}, name="inp")
    equations = ["y = tanh(h)"] + [f"{var} = h" for var in post_vars if var == "I"]
    inputs = [var for var in post_vars if var not in ("y", "I")]
    post = pl.Population(n_post, equations, init={var: 0.0 for var in inputs}, name="out")
    source = "x" if "x" in pre_vars else pre_vars[0]
    projection = pl.Projection(pre, post, rule, source=source, target="h", shared=shared, mask=mask, name="ff")
    keys = [f"inp.{var}" for var in pre_vars] + [f"out.{var}" for var in inputs]
    keys += [f"ff.{mod}" for mod in rule.modulators]
    return pl.Network([pre, post], [projection]), keys


def random_inputs(keys, network, trials, steps, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {}
    for key in keys:
        owner, var = key.split(".")
        if owner in network.populations:
            inputs[key] = rng.normal(size=(steps, trials, network.populations[owner].n))
        else:
            inputs[key] = rng.normal(size=(steps, trials))
    return inputs


def run(network, backend, dtype, inputs, trials=3, steps=STEPS):
    simulation = pl.Simulation(network, trials=trials, backend=backend, seed=3, dtype=dtype)
    record = {key: steps for key in simulation.shapes}
    return simulation.run(steps, inputs=inputs, record=record), simulation


def assert_agree(make, dtype, trials=3, steps=STEPS):
    network, keys = make()
    inputs = random_inputs(keys, network, trials, steps)
    expected, _ = run(network, "numpy", dtype, inputs, trials, steps)
    network, _ = make()
    actual, simulation = run(network, "numba", dtype, inputs, trials, steps)
    for key in expected.data_vars:
        error = relative(actual[key].values, expected[key].values)
        assert error <= TOLERANCE[dtype], f"{key}: relative error {error:.2e} ({dtype})"
    return simulation


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list_rules())
def test_builtin_rules_match_numpy(name, dtype):
    if get_rule(name) in STORAGE_RULES:
        pytest.skip("a memory's storage rule needs +-1 patterns on a recurrent projection; its backends are compared "
                    "on the memory network (test_hopfield.py::test_storage_rules_match_reference)")
    assert_agree(lambda: rule_network(get_rule(name)), dtype)


CUSTOM_RULES = {
    "functions": pl.Rule(
        [
            "w += eta * (tanh(y_post) * sigmoid(x_pre) - abs(w) * sign(w) * 0.1 + exp(-x_pre * x_pre) * relu(y_post)"
            " + heaviside(x_pre) * sin(w) - cos(y_post) * 0.01 + sqrt(abs(x_pre) + 1) * log(1 + y_post * y_post) * 0.01"
            " + minimum(x_pre, y_post) * 0.1 + maximum(w, -0.2) * 0.01 + clip(x_pre * y_post, -0.5, 0.5)"
            " + (x_pre ** 2) * 0.01 - w / (2 + y_post * y_post) * 0.1)"
        ],
        params={"eta": 0.01},
        name="functions",
    ),
    "where": pl.Rule(
        [
            "w += eta * where(x_pre * y_post > w, x_pre, -y_post * w)"
            " + eta * where(y_post <= 0.1, 0.5, 0) - eta * where(x_pre != 0, where(w >= 0, w, 0), 1) * 0.1"
            " + eta * where(y_post < x_pre, 1, 0) * where(x_pre == x_pre, 0.01, 0)"
        ],
        params={"eta": 0.01},
        name="where",
    ),
    "reductions": pl.Rule(
        [
            "s_post = sum_pre(w * x_pre)",
            "c_pre = sum_post(w * y_post) + sum_post(y_post) * 0.1",
            "w += eta * (y_post * x_pre - cumsum_post(y_post * w) * y_post + 0.1 * c_pre * s_post"
            " - 0.01 * sum_pre(w * w) * w + 0.01 * sum_pre(x_pre) - 0.01 * cumsum_post(y_post) * w)",
        ],
        params={"eta": 0.01},
        name="reductions",
    ),
    "modulated_traces": pl.Rule(
        [
            "e = decay * e + y_post * x_pre",
            "theta_post += (y_post * y_post - theta_post) * dt / tau",
            "a_pre = x_pre * t * 0.01",
            "g *= 0.99 + 0.01 * tanh(y_post * x_pre)",
            "w += eta * (m - baseline) * e * (y_post - theta_post) + 0.001 * a_pre * g",
        ],
        params={"eta": 0.01, "decay": 0.9, "baseline": 0.1, "tau": 20.0},
        modulators=("m",),
        init={"theta_post": 0.5, "g": 1.0},
        name="modulated_traces",
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CUSTOM_RULES))
def test_custom_rules_match_numpy(name, dtype):
    assert_agree(lambda: rule_network(CUSTOM_RULES[name]), dtype)


MASK = np.random.default_rng(5).random((5, 7)) > 0.3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["oja", "sanger", "functions", "modulated_traces"])
def test_masked_match_numpy(name, dtype):
    rule = CUSTOM_RULES.get(name) or get_rule(name)
    simulation = assert_agree(lambda: rule_network(rule, mask=MASK), dtype)
    assert np.all(simulation.get("ff.w")[:, ~MASK] == 0)


SHARED_CASES = [
    (name, "float32", False) for name in ("oja", "hebb", "sanger", "bcm", "covariance", "reductions", "modulated_traces")
] + [
    ("oja", "float32", True),
    ("sanger", "float32", True),
    ("modulated_traces", "float32", True),
    ("oja", "float64", True),
    ("reductions", "float64", False),
]


@pytest.mark.parametrize("name,dtype,masked", SHARED_CASES)
def test_shared_weights_match_numpy(name, dtype, masked):
    """Separable increments (GEMM path) and the fused (row, column, trial) loop."""
    rule = CUSTOM_RULES.get(name) or get_rule(name)
    assert_agree(lambda: rule_network(rule, shared=True, mask=MASK if masked else None), dtype, trials=4)


@pytest.mark.parametrize("name", ["oja", "hebb"])
def test_separable_update_adds_its_product_in_place(name):
    """A separable shared-weight update has BLAS add its product to the weights (beta = 1): it keeps
    no buffer the size of the weights, and agrees with numpy."""
    simulation = assert_agree(lambda: rule_network(get_rule(name), n_post=30, shared=True), "float64", trials=3)
    arrays = simulation.engine._plasticity["ff"].arrays  # the state arrays it reads and writes, then its buffers
    weights = simulation.engine.arrays["ff.w"]
    assert any(array is weights for array in arrays)
    assert all(array.size < weights.size for array in arrays if array is not weights)


@pytest.mark.parametrize(
    "equation",
    [
        "w += eta * y_post * x_pre",
        "w -= eta * 2 * y_post * (0.5 * x_pre)",
        "w += eta * exp(-t / tau) * y_post * x_pre - eta * 0.1 * w",
    ],
)
def test_a_term_of_two_unit_variables_multiplies_the_state_arrays(equation):
    """An outer term that is one post and one pre unit variable times scalars multiplies the state
    arrays themselves (the post one as a transposed view), its scalars in BLAS's alpha: no factor
    matrix is written out, and the update agrees with numpy."""
    rule = pl.Rule([equation], {"eta": 0.01, "tau": 5.0})
    simulation = assert_agree(lambda: rule_network(rule, n_post=30, shared=True), "float64", trials=3)
    buffers = simulation.engine.source.plasticity["ff"].buffers
    assert not [shape for _, shape, _ in buffers if "trials" in shape]


def test_shared_updates_with_powers_and_quotients_are_separable():
    """The separable algebra the torch backend uses (:mod:`plasticity.equations.separable`) also
    expands integer powers and one-sided divisors, so such a shared-weight update is one BLAS
    product on numba as well, and agrees with numpy."""
    rule = pl.Rule(["w += eta * (1 + y_post) ** 2 * x_pre / (1 + x_pre * x_pre) - eta * w"], {"eta": 0.01})
    assert numba_codegen.separable_terms(rule.parsed[0]) is not None
    assert_agree(lambda: rule_network(rule, n_post=30, shared=True), "float64", trials=3)


def test_a_where_over_synapses_keeps_its_guard_on_shared_weights():
    """``where(c, a / q, 0)`` split into indicator products would be ``0 * inf`` (NaN) where the
    guard is false and ``q`` zero: numba evaluates it per synapse, as numpy does, and stays finite."""
    rule = pl.Rule(["w += eta * where(y_post > 0, x_pre / y_post, 0)"], {"eta": 0.01})
    assert numba_codegen.separable_terms(rule.parsed[0]) is None
    inp = pl.Population(7, init={"x": 0.0}, name="inp")
    out = pl.Population(5, ["y = tanh(h)"], name="out")
    projection = pl.Projection(inp, out, rule, target="h", shared=True, init={"w": 0.0}, name="ff")
    network = pl.Network([inp, out], [projection])  # y stays 0: the guard is false, x / y infinite
    inputs = {"inp.x": np.ones((3, 2, 7))}
    runs = {backend: pl.Simulation(network, trials=2, backend=backend, seed=0).run(3, inputs=inputs, record={"ff.w": 3})
            for backend in ("numpy", "numba")}
    np.testing.assert_array_equal(runs["numba"]["ff.w"].values, runs["numpy"]["ff.w"].values)
    assert np.isfinite(runs["numba"]["ff.w"].values).all()


def test_separable_updates_are_detected():
    oja = numba_codegen.separable_terms(get_rule("oja").parsed[0])
    assert oja is not None and len(oja.row_scale) == 1 and len(oja.outer) == 1 and not oja.column_scale
    hebb = numba_codegen.separable_terms(get_rule("hebb").parsed[0])
    assert hebb is not None and len(hebb.row_scale) == 1 and len(hebb.outer) == 1
    assert numba_codegen.separable_terms(get_rule("sanger").parsed[0]) is None
    assert numba_codegen.separable_terms(CUSTOM_RULES["functions"].parsed[0]) is None


def population_network():
    inp = pl.Population(6, init={"x": 0.0}, name="inp")
    out = pl.Population(
        5,
        [
            "u = I - mean(I)",
            "y = softmax(u * beta) + 0.1 * tanh(u) * sum(u * u) / (1 + max(abs(u))) - 0.01 * min(u)",
            "z += 0.5 * (y - z) * dt + 0.001 * t",
        ],
        init={"z": 0.0},
        params={"beta": 2.0},
        name="out",
    )
    return pl.Network([inp, out], [pl.Projection(inp, out, "oja", name="ff")]), ["inp.x"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_population_reductions_match_numpy(dtype):
    assert_agree(population_network, dtype)


def feedback_network(n_in=6, n_hid=4):
    """Predictive-coding-like custom stages: errors, transposed feedback, values."""
    inp = pl.Population(n_in, {"values": ["z = tanh(B)"]}, init={"x": 0.0, "z": 0.0}, name="inp")
    hid = pl.Population(
        n_hid, {"errors": ["e = v - I"], "values": ["v += 0.2 * (tanh(I) - v) - 0.1 * e"]}, init={"v": 0.0}, name="hid"
    )
    rule = pl.Rule(["w += lr * e_post * x_pre"], params={"lr": 0.01}, name="pc")
    forward = pl.Projection(inp, hid, rule, source="x", target="I", feedback=("e", "B"), name="ff")
    network = pl.Network([inp, hid], [forward], stages=("drive", "errors", "feedback", "values", "plasticity"))
    return network, ["inp.x"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_stages_with_feedback_match_numpy(dtype):
    simulation = assert_agree(feedback_network, dtype)
    assert simulation.engine.fused_steps == STEPS - 1


def test_parallel_kernels_match_numpy():
    """Big enough for the multi-threaded kernels (trials * post * pre above the threshold),
    rows longer than one column block."""
    big = numba_codegen.PARALLEL_MIN_ELEMENTS
    assert 2 * 1500 * 100 >= big and 2 * 1100 * 120 >= big and 1500 > numba_plasticity._BlockViews.SIZE
    simulation = assert_agree(lambda: rule_network(get_rule("bcm"), n_pre=1500, n_post=100), "float32", trials=2, steps=10)
    assert simulation.engine.source.plasticity["ff"].parallel
    # running sums in column chunks (the last one partial), fused drive summed over chunks
    assert_agree(lambda: rule_network(get_rule("sanger"), n_pre=1100, n_post=120), "float32", trials=2, steps=10)
    assert_agree(lambda: rule_network(get_rule("sanger"), n_pre=1100, n_post=120, shared=True), "float32", trials=2, steps=10)
    # transposed feedback over several chunks of columns
    assert_agree(lambda: feedback_network(600, 50), "float32", trials=2, steps=10)
    # the shared-weight loop over several column blocks, with every synapse reduction
    assert_agree(lambda: rule_network(CUSTOM_RULES["reductions"], n_pre=2100, n_post=6, shared=True), "float64", trials=2, steps=5)



def _steps_in_child(simulation, inputs, queue):
    try:
        simulation.advance(3)  # a compiled program
        simulation.run(2, inputs={"inp.x": inputs})  # step by step
        queue.put(simulation.get("hid.v"))
    except BaseException as error:  # the parent reports it
        queue.put(repr(error))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_a_forked_child_runs_the_threaded_kernels_serially(monkeypatch):
    """numba's omp layer terminates a forked child that starts a threaded loop after its parent
    did: there every threaded kernel (population, plasticity, per-trial products; stepped and in a
    compiled program) runs its serial twin, with the parent's results."""
    import multiprocessing

    import numba

    monkeypatch.setattr(numba_backend, "COMPILE_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(numba_backend, "FUSED_STEP_MIN_SYNAPSES", float("inf"))  # its learning runs compiled too
    network, _ = feedback_network(200, 200)
    simulation = pl.Simulation(network, trials=100, backend="numba", seed=0)
    source = simulation.engine.source
    assert source.plasticity["ff"].parallel and source.units[("hid", "values")].parallel
    inputs = np.random.default_rng(0).standard_normal((2, 100, 200))
    simulation.set("inp.x", inputs[0])
    previous = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        simulation.advance(3)
        simulation.run(2, inputs={"inp.x": inputs})
        assert simulation.engine.compiled_steps == 3
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_steps_in_child, args=(simulation, inputs, queue))
        child.start()
        try:
            found = queue.get(timeout=120)  # before join: the child exits once its result is read
        except Exception:
            found = None
        child.join(10)
        if child.is_alive():
            child.kill()
            pytest.fail("the forked child hung")
        assert child.exitcode == 0 and found is not None, f"the forked child ended with {child.exitcode}"
        simulation.advance(3)
        simulation.run(2, inputs={"inp.x": inputs})
    finally:
        numba.set_num_threads(previous)
    assert not isinstance(found, str), found
    np.testing.assert_allclose(found, simulation.get("hid.v"), rtol=1e-6)

# the fused pass -----------------------------------------------------------------------------


def oja_simulation(n=32, m=16, trials=2, steps=50):
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(m, ["y = I"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, "oja", name="ff")])
    inputs = np.random.default_rng(1).normal(size=(steps, trials, n))
    return pl.Simulation(network, trials=trials, backend="numba", seed=2), inputs


def test_fused_pass_is_used_and_equals_unfused():
    fused, inputs = oja_simulation()
    assert fused.engine.provenance["numba_fused_projections"] == "ff"
    fused.run(len(inputs), inputs={"inp.x": inputs})
    assert fused.engine.fused_steps == len(inputs) - 1
    plain, _ = oja_simulation()
    for step, x in enumerate(inputs):  # without next_inputs nothing is precomputed
        plain.engine.step(float(step + 1), {"inp.x": x}, frozenset({"ff"}), None)
    assert plain.engine.fused_steps == 0
    for key in ("ff.w", "out.y", "out.I"):
        assert relative(fused.get(key), plain.get(key)) < 1e-6


def test_set_invalidates_the_precomputed_drive():
    simulation, inputs = oja_simulation(steps=10)
    reference, _ = oja_simulation(steps=10)
    reference.engine = pl.Simulation(reference.network, trials=2, backend="numpy", seed=2).engine
    for sim in (simulation, reference):
        sim.run(5, inputs={"inp.x": inputs[:5]})
        sim.set("ff.w", 0.5 * sim.get("ff.w"))
        sim.run(5, inputs={"inp.x": inputs[5:]})
    assert relative(simulation.get("ff.w"), reference.get("ff.w")) < 1e-5


def test_units_between_plasticity_and_drive_prevent_fusion():
    inp = pl.Population(8, init={"x": 0.0}, name="inp")
    out = pl.Population(3, ["y = I"], name="out")
    network = pl.Network(
        [inp, out], [pl.Projection(inp, out, "oja", name="ff")], stages=("plasticity", "units", "drive")
    )
    from plasticity.network import fusion_mode

    assert fusion_mode(network, "ff") is None
    assert fusion_mode(oja_simulation()[0].network, "ff") is True


# no temporaries of the size of W ------------------------------------------------------------


@pytest.mark.parametrize("shared,rule", [(False, "oja"), (True, "oja"), (True, "sanger")])
def test_no_weight_sized_temporaries_in_a_step(shared, rule):
    n = 2048
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(n, ["y = I"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, rule, shared=shared, name="ff")])
    trials = 2 if shared else 1
    simulation = pl.Simulation(network, trials=trials, backend="numba", seed=0)
    engine = simulation.engine
    x = np.random.default_rng(0).normal(size=(trials, n))
    engine.step(1.0, {"inp.x": x}, frozenset({"ff"}), {"inp.x": x})  # compile
    tracemalloc.start()
    for step in range(2):
        engine.step(2.0 + step, {"inp.x": x}, frozenset({"ff"}), {"inp.x": x})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * n * 4 / 16, f"peak {peak} bytes during a step"


# the disk cache -----------------------------------------------------------------------------

CACHE_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, plasticity as pl
    inp = pl.Population(512, init={"x": 0.0}, name="inp")
    out = pl.Population(256, ["y = tanh(I)"], name="out")
    network = pl.Network([inp, out], [pl.Projection(inp, out, "bcm", name="ff")])
    simulation = pl.Simulation(network, trials=2, backend="numba", seed=0)
    assert simulation.engine.source.plasticity["ff"].parallel  # threaded kernels load from disk too
    simulation.run(3, inputs={"inp.x": np.ones((3, 2, 512))})
    hits = misses = 0
    for dispatcher in simulation.engine.dispatchers():
        hits += sum(dispatcher.stats.cache_hits.values())
        misses += sum(dispatcher.stats.cache_misses.values())
    print(json.dumps({"hits": hits, "misses": misses, "file": simulation.engine.provenance["numba_kernels"]}))
    """
)


def test_second_process_does_not_compile(tmp_path):
    environment = dict(os.environ, PLASTICITY_CACHE_DIR=str(tmp_path / "kernels"))
    reports = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", CACHE_SCRIPT], env=environment, capture_output=True, text=True, check=True
        )
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = reports
    assert first["file"] == second["file"]
    assert (tmp_path / "kernels" / first["file"]).exists()
    assert first["misses"] >= 2  # the generated kernels were compiled ...
    assert second["misses"] == 0 and second["hits"] >= 2  # ... and loaded from disk the second time


@pytest.mark.parametrize(
    "damage", [lambda good: good.replace(b"VALUE = 1", b"VALUE = 2"), lambda good: good[: len(good) // 2]],
    ids=["edited", "truncated"],
)
def test_a_damaged_cache_file_is_refused_and_rewritten(tmp_path, monkeypatch, damage):
    """A kernel module whose content does not match the digest in its file name is not imported:
    the cache warns, writes the file again from the source and imports that."""
    monkeypatch.setenv("PLASTICITY_CACHE_DIR", str(tmp_path))
    source = "VALUE = 1\n"
    module = numba_cache.load_module(source)
    path = Path(module.__file__)
    good = path.read_bytes()
    del sys.modules[module.__name__]  # as a new process would: import from the file
    path.write_bytes(damage(good))
    try:
        with pytest.warns(RuntimeWarning, match="does not match the digest in its name"):
            again = numba_cache.load_module(source)
        assert again.VALUE == 1 and path.read_bytes() == good
        assert [entry.name for entry in tmp_path.iterdir() if entry.suffix == ".tmp"] == []
    finally:
        sys.modules.pop(module.__name__, None)


def test_unusual_stage_names_parameters_and_multiline_equations():
    """Generated source stays valid whatever the names and line breaks of the model."""

    def make():
        inp = pl.Population(4, init={"x": 0.0}, name="inp")
        out = pl.Population(3, {"odd stage-name": ["y = (I\n + 1)"]}, name="out")
        rule = pl.Rule(["w += eta * y_post * (x_pre\n - y_post * w)"], params={"eta": 0.01, "not an id": 2.0})
        projection = pl.Projection(inp, out, rule, name="ff")
        return pl.Network([inp, out], [projection], stages=("drive", "odd stage-name", "plasticity")), ["inp.x"]

    assert_agree(make, "float32", steps=10)


@pytest.mark.parametrize("shape, dtype", [((1600, 400), "float32"), ((3, 5, 7), "float64"), (0, "float32"), (9, "int64")])
def test_aligned_arrays_start_on_64_bytes(shape, dtype):
    from plasticity._aligned import aligned_empty, aligned_zeros

    for array in (aligned_empty(shape, dtype), aligned_zeros(shape, dtype)):
        assert array.ctypes.data % 64 == 0 or array.size == 0
        assert array.shape == ((shape,) if isinstance(shape, int) else shape) and array.dtype == np.dtype(dtype)
        assert array.flags.c_contiguous and array.flags.writeable
    assert not aligned_zeros(shape, dtype).any()


def test_engine_state_and_drive_buffers_are_aligned():
    """Every state array (initial values drawn into aligned memory, handed to the engine without a
    copy) and every drive buffer the products write starts on a 64-byte boundary."""
    network, _ = rule_network(get_rule("oja"), n_pre=37, n_post=11, shared=True)
    sim = pl.Simulation(network, trials=3, backend="numba", dtype="float32", seed=0)
    engine = sim.engine
    assert all(array.ctypes.data % 64 == 0 for array in engine.arrays.values())
    assert all(slot.contribution.ctypes.data % 64 == 0 for slot in engine._contribution.values())

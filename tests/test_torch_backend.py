"""The torch backend: agreement with the numpy reference, in-place updates, devices, dtypes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import plasticity as pl
from backends import assert_backends_agree, assert_protocol_backends_agree, relative_error
from plasticity.backends import check_backend
from plasticity.backends.numpy_backend import evaluate
from plasticity.backends.torch_backend import _plan_separable, available_devices, default_compile, resolve_device
from plasticity.backends.torch_codegen import expand
from plasticity.equations import Name, Reduce, walk
from plasticity.rules.storage import STORAGE_RULES
from plasticity.rules import get_rule, list_rules
from reference import evaluate_monomials

TORCH = ("torch",)
STEPS, TRIALS = 100, 3


# networks ---------------------------------------------------------------------------------------


def rule_network(rule, *, shared=False, mask=False, n_pre=5, n_post=4):
    """``pre`` (inputs) -> ``post`` with y = tanh(h), I = h and any other variable the rule reads."""
    rule = get_rule(rule) if isinstance(rule, str) else rule
    pre = pl.Population(n_pre, init={v: 0.0 for v in sorted(rule.unit_reads("pre") | {"x"})}, name="pre")
    post = pl.Population(
        n_post, ["I = h", "y = tanh(h)"], init={v: 0.0 for v in sorted(rule.unit_reads("post") - {"y", "I"})}, name="post"
    )
    keep = (np.arange(n_pre)[None, :] + np.arange(n_post)[:, None]) % 3 != 0 if mask else None
    projection = pl.Projection(pre, post, rule, source="x", target="h", shared=shared, mask=keep, name="ff")
    return pl.Network([pre, post], [projection])


def random_inputs(network, steps=STEPS, trials=TRIALS, seed=1):
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in ("pre", "post"):
        population = network.populations[name]
        for var in population.init:
            inputs[f"{name}.{var}"] = rng.standard_normal((steps, trials, population.n))
    for projection in network.projections.values():
        for modulator in projection.rule.modulators:
            inputs[f"{projection.name}.{modulator}"] = rng.standard_normal((steps, trials))
    return inputs


#: Rules written for this test: every kind of term the separable analysis handles, and ones it
#: must leave to the blocks of rows.
CUSTOM_RULES = {
    "sum_pre (matvec)": pl.Rule(["w += eta * y_post * (x_pre - sum_pre(w * x_pre) * w)"], {"eta": 0.01}),
    "sum_post (matvec)": pl.Rule(["w += eta * x_pre * (y_post - sum_post(y_post * w))"], {"eta": 0.01}),
    "normalise (=, division)": pl.Rule(["w = (w + eta * y_post * x_pre) / (1 + eta * sum_pre(y_post * x_pre))"], {"eta": 0.05}),
    "multiply (*=, rank one)": pl.Rule(["w *= 1 - eta * y_post * x_pre"], {"eta": 0.01}),
    "multiply (*=, one side)": pl.Rule(["w *= exp(-eta * y_post * y_post)"], {"eta": 0.1}),
    "subtract (-=, pre scale)": pl.Rule(["w -= eta * (w * x_pre * x_pre - y_post * x_pre)"], {"eta": 0.01}),
    "power and scalars": pl.Rule(["w += eta * (x_pre - w) ** 2 * heaviside(y_post) - eta * exp(-t * dt / tau) * w"], {"eta": 0.01, "tau": 50.0}),
    "where on one side": pl.Rule(["w += eta * where(y_post > 0, 1, 0) * x_pre - eta * where(x_pre < 0.5, w, 0.5 * w)"], {"eta": 0.01}),
    "both-side scale (blocks)": pl.Rule(["w += eta * y_post * x_pre * w"], {"eta": 0.01}),
    "clip of w (blocks)": pl.Rule(["w = clip(w + eta * y_post * x_pre, -0.3, 0.3)"], {"eta": 0.05}),
    "where on synapses (blocks)": pl.Rule(["w += eta * where(w * x_pre > 0, y_post, -y_post)"], {"eta": 0.01}),
    "non-separable reduction": pl.Rule(["w += eta * y_post * (x_pre - sum_pre(tanh(w) * x_pre))"], {"eta": 0.01}),
    "trace and modulator": pl.Rule(
        ["e = beta * e + y_post * x_pre", "w += eta * m * e - eta * m * m * e * x_pre", "r_post += sum_pre(e * e) * dt"],
        {"eta": 0.01, "beta": 0.9}, modulators=("m",),
    ),
    "threshold per pre unit": pl.Rule(
        ["a_pre += alpha * (sum_post(w * y_post) - a_pre)", "w += eta * y_post * (x_pre - a_pre)"], {"eta": 0.01, "alpha": 0.1},
    ),
}


# agreement with the numpy reference ---------------------------------------------------------------


@pytest.mark.parametrize("shared, mask", [(False, False), (True, True)], ids=["per-trial", "shared-masked"])
@pytest.mark.parametrize("name", sorted(list_rules()))
def test_builtin_rules_agree_with_numpy(name, shared, mask):
    if get_rule(name) in STORAGE_RULES:
        pytest.skip("a memory's storage rule needs +-1 patterns on a recurrent projection; its backends are compared "
                    "on the memory network (test_hopfield.py::test_storage_rules_match_reference)")
    network = rule_network(name, shared=shared, mask=mask)
    assert_backends_agree(
        lambda: rule_network(name, shared=shared, mask=mask), steps=STEPS, trials=TRIALS,
        inputs=random_inputs(network), backends=TORCH,
    )


@pytest.mark.parametrize("shared", [False, True], ids=["per-trial", "shared"])
@pytest.mark.parametrize("name", sorted(CUSTOM_RULES))
def test_custom_rules_agree_with_numpy(name, shared):
    rule = CUSTOM_RULES[name]
    network = rule_network(rule, shared=shared)
    assert_backends_agree(
        lambda: rule_network(rule, shared=shared), steps=STEPS, trials=TRIALS, inputs=random_inputs(network), backends=TORCH,
    )


def test_feedback_stages_and_population_reductions_agree():
    def make():
        inp = pl.Population(6, {"values": ["u = x - 0.1 * B"]}, init={"x": 0.0}, name="inp")
        hidden = pl.Population(
            5,
            {"errors": ["e = v - relu(I)"], "values": ["v += 0.1 * (L - v)", "p = softmax(2 * v)", "z = v - max(v) + mean(v) * dt * k"]},
            params={"k": 2.0},
            name="hidden",
        )
        rule = pl.Rule(["w += lr * e_post * x_pre"], {"lr": 0.02})
        forward = pl.Projection(inp, hidden, rule, source="x", feedback=("e", "B"), name="fwd")
        fixed = pl.Projection(hidden, hidden, None, source="v", target="L", shared=True, name="lat")
        return pl.Network([inp, hidden], [forward, fixed], stages=("drive", "errors", "feedback", "values", "plasticity"))

    inputs = {"inp.x": np.random.default_rng(3).standard_normal((STEPS, TRIALS, 6))}
    assert_backends_agree(make, steps=STEPS, trials=TRIALS, inputs=inputs, backends=TORCH)


def test_plastic_subset_and_callable_inputs_agree():
    def draw(step, rng):
        return rng.standard_normal((TRIALS, 5))

    assert_backends_agree(
        lambda: rule_network("oja"), steps=STEPS, trials=TRIALS, inputs={"pre.x": draw}, plastic=[], backends=TORCH
    )
    assert_backends_agree(lambda: rule_network("oja"), steps=STEPS, trials=TRIALS, inputs={"pre.x": draw}, backends=TORCH)


#: Small parameters for every protocol, so that the agreement test runs it in about a second.
SMALL_PARAMS = {
    "attention.recall": {"vocab": 256, "seq_len": 64, "pairs": 16, "d_model": 16, "trials": 4},
    "attention.train": {"vocab": 32, "seq_len": 16, "pairs": 2, "d_model": 8, "steps": 2, "batch": 4, "test": 8},
    "dense.capacity": {"n": 24, "load": 0.5, "trials": 4, "max_sweeps": 10},
    "hopfield.capacity": {"n": 40, "load": 0.1, "trials": 4, "max_sweeps": 10},
    "learn.capacity": {"n": 12, "load": 1.0, "trials": 3, "epochs": 5},
    "modern.retrieval": {"n": 16, "patterns": 20, "trials": 8},
    "motifs": {"task": "xor", "hidden": 8, "epochs": 5, "trials": 2},
    "pc.train": {"sizes": (64, 4, 10), "T": 2, "batch": 16, "epochs": 1, "test_fraction": 0.9, "alignment": "step"},
    "pca": {"n": 6, "k": 2, "rule": "sanger", "steps": 100, "trials": 2, "record_every": 10},
    "uhn.retrieval": {"patterns": 10, "n": 64, "beta": 10.0},
    "vector_hash.continuum": {"lambdas": [2, 3], "n_place": 40, "n_sensory": 50, "patterns": 20, "level": 0.1, "trials": 2},
    "vector_hash.sequence": {"lambdas": [2, 3], "n_place": 40, "n_sensory": 50, "length": 6, "trials": 2},
}


@pytest.mark.parametrize("name", sorted(pl.list_protocols()))
def test_protocols_agree_with_numpy(name):
    if name not in SMALL_PARAMS:
        pytest.fail(f"protocol {name!r} has no small parameters in SMALL_PARAMS of {__file__}; add them")
    assert_protocol_backends_agree(name, SMALL_PARAMS[name], backends=TORCH)


# the separable analysis --------------------------------------------------------------------------


def _synapse_expressions():
    rules = [get_rule(name) for name in list_rules()] + list(CUSTOM_RULES.values())
    return [eq for rule in rules for eq in rule.parsed if eq.level == "synapse"]


@pytest.mark.parametrize("equation", _synapse_expressions(), ids=lambda eq: eq.text)
def test_expansion_equals_the_expression(equation):
    """The monomials the torch backend applies sum to the expression itself (reference evaluation)."""
    terms = expand(equation.expr)
    if terms is None:
        pytest.skip("not a sum of monomials the torch backend applies: it evaluates this one over blocks of rows")
    rng = np.random.default_rng(0)
    env, reduced = {}, {}
    for node in walk(equation.expr):
        if isinstance(node, Name):
            shape = {"pre": (2, 1, 5), "post": (2, 4, 1), "synapse": (2, 4, 5), "global": (2, 1, 1)}.get(node.kind)
            env[node.name] = rng.uniform(0.5, 1.5, shape) if shape else float(rng.uniform(0.5, 1.5))
        if isinstance(node, Reduce):
            reduced[node] = rng.uniform(0.5, 1.5, (2, 1, 5) if node.axis == "post" else (2, 4, 1))
    env.update(t=3.0, dt=0.5)
    expected = np.broadcast_to(evaluate(equation.expr, env, reduced), (2, 4, 5))
    actual = evaluate_monomials(terms, env, reduced, (2, 4, 5))
    assert relative_error(actual, expected) < 1e-12


def test_a_split_where_keeps_its_guard_on_the_conditions_side():
    """``where(x_pre != 0, y_post / x_pre, 0)`` splits into ``y_post * where(x_pre != 0, 1 / x_pre, 0)``:
    where x_pre is 0 the expansion is the expression's 0, not ``0 * inf`` (NaN); a run on torch
    then ends where numpy's does (it stopped with a DivergenceError when the indicator multiplied)."""
    rule = pl.Rule(["w += eta * where(x_pre != 0, y_post / x_pre, 0)"], params={"eta": 0.1}, name="guarded")
    (equation,) = rule.parsed
    terms = expand(equation.expr)
    assert terms is not None
    env = {"x_pre": np.array([0.0, 1.0, 2.0, 0.0, -1.0]).reshape(1, 1, 5), "y_post": np.linspace(-1, 1, 4).reshape(1, 4, 1), "eta": 0.1}
    expected = np.broadcast_to(evaluate(equation.expr, env, {}), (1, 4, 5))
    np.testing.assert_allclose(evaluate_monomials(terms, env, {}, (1, 4, 5)), expected, rtol=1e-12)
    weights = {}
    for backend in ("numpy", "torch"):
        inp = pl.Population(5, init={"x": 0.0}, name="inp")
        out = pl.Population(4, ["y = I + 1"], name="out")
        network = pl.Network([inp, out], [pl.Projection(inp, out, rule, name="ff")])
        simulation = pl.Simulation(network, trials=2, backend=backend, seed=0, dtype="float64")
        simulation.run(2, inputs={"inp.x": np.array([0.0, 1.0, 2.0, 0.0, -1.0])})
        weights[backend] = simulation.get("ff.w")
    np.testing.assert_allclose(weights["torch"], weights["numpy"], rtol=1e-12)


def test_oja_is_applied_in_place_without_blocks():
    plan = _plan_separable(get_rule("oja").parsed[0], shared=False)
    assert plan is not None and len(plan.scale) == 1 and plan.scale_side == "post" and len(plan.outer) == 1
    (sanger,) = get_rule("sanger").parsed
    assert _plan_separable(sanger, shared=False) is None  # cumsum_post runs over blocks of rows


def _peak_allocated(function) -> int:
    """Peak bytes allocated by torch (above what was live before) while ``function`` runs on the CPU."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = sorted((event for event in prof.events() if event.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("rule, limit", [("oja", "O(N)"), ("bcm", "O(N)"), ("sanger", "block")])
def test_step_peak_memory_is_weights_plus_order_n(rule, limit):
    """At N = 2048 a step allocates O(N) beyond the state (W is never copied); blocks stay small."""
    n = 2048
    network = rule_network(rule, n_pre=n, n_post=n)
    simulation = pl.Simulation(network, trials=1, backend="torch", device="cpu", seed=0)
    simulation.run(1, inputs={"pre.x": np.ones(n)})
    engine = simulation.engine
    x = np.random.default_rng(0).standard_normal((1, n))
    weight_bytes = n * n * 4
    peak = _peak_allocated(lambda: engine.step(2.0, {"pre.x": x}, frozenset({"ff"})))
    bound = 64 * n * 4 if limit == "O(N)" else 16 * engine.block * 4 + 64 * n * 4
    assert peak <= bound, f"a step allocated {peak} bytes; bound {bound}, W is {weight_bytes}"
    assert peak < weight_bytes / 4


def test_memory_measurement_sees_a_temporary_the_size_of_w():
    weights, u, v = torch.zeros(512, 512), torch.ones(512), torch.ones(512)
    assert _peak_allocated(lambda: weights.add_(torch.outer(u, v))) >= 512 * 512 * 4
    assert _peak_allocated(lambda: weights.addr_(u, v)) < 512 * 4 * 8


@pytest.mark.slow
def test_compiled_updates_agree_with_numpy(monkeypatch):
    """compile=True (PLASTICITY_TORCH_COMPILE=1): the single-pass torch.compile update, same results."""
    monkeypatch.setenv("PLASTICITY_TORCH_COMPILE", "1")
    network = rule_network("three_factor")
    assert_backends_agree(lambda: rule_network("three_factor"), steps=STEPS, trials=TRIALS, inputs=random_inputs(network), backends=TORCH)
    simulation = pl.Simulation(rule_network("three_factor"), trials=TRIALS, backend="torch", seed=0)
    assert all(program.fused is not None for program in simulation.engine._rules["ff"])
    assert simulation.run(1, inputs=random_inputs(network, steps=1)).attrs["torch_compile"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("stages", [None, ("plasticity", "drive", "units")], ids=["next step's drive", "same step's drive"])
@pytest.mark.parametrize("mask", [False, True], ids=["dense", "masked"])
def test_compiled_update_computes_the_next_drive(monkeypatch, stages, mask):
    """The compiled update of w also sums the new weights times the source as the next drive sees it
    (the next step's input, or the source as it is when the drive comes later in the same step);
    that drive takes it, and runs of a few steps, a changed input between runs and weights set
    between runs still give the numpy backend's values."""
    monkeypatch.setenv("PLASTICITY_TORCH_COMPILE", "1")

    def network():
        plain = rule_network("oja", mask=mask)
        if stages is None:
            return plain
        return pl.Network(list(plain.populations.values()), list(plain.projections.values()), stages=stages)

    inputs = random_inputs(network(), steps=15)["pre.x"]
    runs = {}
    for backend in ("numpy", "torch"):
        simulation = pl.Simulation(network(), trials=TRIALS, backend=backend, seed=0)
        simulation.run(8, inputs={"pre.x": inputs[:8]})
        simulation.run(3, inputs={"pre.x": inputs[8:11]})
        simulation.set("ff.w", 0.5 * simulation.get("ff.w"))
        simulation.run(4, inputs={"pre.x": inputs[11:]})
        runs[backend] = simulation
    engine = runs["torch"].engine
    assert engine._fusion == {"ff": stages is None}
    for key in ("ff.w", "post.h", "post.y"):
        assert relative_error(runs["torch"].get(key), runs["numpy"].get(key)) < 1e-5, key
    # the next step's drive: each run's first is computed (a new input, weights set), every later one
    # taken; a drive later in the same step takes what that step's update computed, every time
    assert engine.fused_steps == ((8 - 1) + (3 - 1) + (4 - 1) if stages is None else 15)


def test_updates_are_compiled_by_default_on_cuda_only(monkeypatch):
    """Unset PLASTICITY_TORCH_COMPILE: eager updates on the CPU, one compiled pass on CUDA (where
    triton is installed). The variable turning it on is test_compiled_updates_agree_with_numpy."""
    monkeypatch.delenv("PLASTICITY_TORCH_COMPILE", raising=False)
    assert not default_compile(torch.device("cpu"))
    assert default_compile(torch.device("cuda", 0)) == (importlib.util.find_spec("triton") is not None)
    simulation = pl.Simulation(rule_network("oja"), trials=2, backend="torch", seed=0, device="cpu")
    assert simulation.engine.compile is False and simulation.engine.provenance["torch_compile"] == 0


# devices, dtypes, provenance ------------------------------------------------------------------------


def test_default_device_and_provenance():
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(resolve_device(None)) == expected
    simulation = pl.Simulation(rule_network("oja"), trials=2, backend="torch", seed=0)
    run = simulation.run(3, inputs={"pre.x": np.ones(5)}, record={"ff.w": 1})
    assert run.attrs["device"] == expected and run.attrs["torch_version"] == torch.__version__
    assert all(tensor.device == torch.device(expected) for tensor in simulation.engine.arrays.values())
    value = simulation.get("ff.w")
    value[...] = 7.0
    assert not np.any(simulation.get("ff.w") == 7.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_unavailable_device_is_an_error_listing_the_available(device):
    with pytest.raises(pl.BackendError, match="available devices: cpu"):
        resolve_device(device)
    with pytest.raises(pl.BackendError, match="available devices"):
        pl.Simulation(rule_network("oja"), backend="torch", device=device)


def test_unknown_device_strings_are_errors():
    with pytest.raises(pl.BackendError, match="unknown torch device 'gpu0'; available devices: cpu"):
        check_backend("torch", "gpu0")
    count = torch.cuda.device_count()
    with pytest.raises(pl.BackendError, match="not available here"):
        resolve_device(f"cuda:{count}")
    assert "cpu" in available_devices()


def test_unsupported_dtype_is_an_error():
    from plasticity.backends.torch_backend import build

    network = rule_network("oja")
    with pytest.raises(pl.ConfigError, match="dtype must be one of float32, float64, bfloat16, float16"):
        build(network, {}, trials=1, dtype="int8", dt=1.0)


def test_seeded_runs_repeat_exactly():
    def run():
        simulation = pl.Simulation(rule_network("bcm"), trials=2, backend="torch", seed=5)
        return simulation.run(20, inputs={"pre.x": lambda step, rng: rng.standard_normal((2, 5))}, record={"ff.w": 5})

    np.testing.assert_array_equal(run()["ff.w"].values, run()["ff.w"].values)


@pytest.mark.parametrize("dtype, tolerance", [("bfloat16", 0.1), ("float16", 0.01)])
@pytest.mark.parametrize("name, shared", [("oja", False), ("sanger", True), ("three_factor", False), ("bcm", True)])
def test_half_precision_weights_follow_float32(name, shared, dtype, tolerance):
    """Weights stored in bfloat16/float16, everything computed in float32: within half rounding of numpy float32."""
    network = rule_network(name, shared=shared)
    inputs = random_inputs(network)
    runs = {}
    for backend, chosen in (("numpy", "float32"), ("torch", dtype)):
        simulation = pl.Simulation(rule_network(name, shared=shared), trials=TRIALS, backend=backend, dtype=chosen, seed=0)
        runs[backend] = simulation.run(STEPS, inputs=inputs, record={"ff.w": 10, "post.y": 10})
    engine = simulation.engine
    assert engine.arrays["ff.w"].dtype == getattr(torch, dtype)
    assert all(tensor.dtype == torch.float32 for key, tensor in engine.arrays.items() if key != "ff.w")
    assert runs["torch"]["ff.w"].dtype == np.float32 and runs["torch"].attrs["dtype"] == dtype
    for key in ("ff.w", "post.y"):
        assert relative_error(runs["torch"][key].values, runs["numpy"][key].values) < tolerance


def test_half_precision_is_refused_where_it_cannot_work():
    with pytest.raises(pl.ConfigError, match="float16' cannot hold the weights of projection 'ff'.*division"):
        pl.Simulation(rule_network("pc_adam"), backend="torch", dtype="float16")
    pl.Simulation(rule_network("pc_adam"), backend="torch", dtype="bfloat16")  # float32's range: allowed
    with pytest.raises(pl.ConfigError, match="with backend='torch', bfloat16, float16"):
        pl.Simulation(rule_network("oja"), backend="numpy", dtype="bfloat16")


# GPU ---------------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("shared, mask", [(False, False), (True, True)], ids=["per-trial", "shared-masked"])
@pytest.mark.parametrize("name", sorted(list_rules()))
def test_builtin_rules_on_cuda_agree_with_numpy(name, shared, mask):
    network = rule_network(name, shared=shared, mask=mask)
    assert_backends_agree(
        lambda: rule_network(name, shared=shared, mask=mask), steps=STEPS, trials=TRIALS,
        inputs=random_inputs(network), backends=TORCH, device="cuda",
    )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", sorted(pl.list_protocols()))
def test_protocols_on_cuda_agree_with_numpy(name):
    assert_protocol_backends_agree(name, SMALL_PARAMS[name], backends=TORCH, device="cuda")


@pytest.mark.gpu
@needs_cuda
def test_cuda_default_update_is_one_compiled_pass(monkeypatch):
    """On CUDA (with triton) a separable update is by default the single torch.compile pass over W,
    which also computes the next drive: every drive after the run's first takes it."""
    pytest.importorskip("triton")
    monkeypatch.delenv("PLASTICITY_TORCH_COMPILE", raising=False)
    simulation = pl.Simulation(rule_network("oja"), trials=TRIALS, backend="torch", device="cuda", seed=0)
    assert simulation.engine.compile and all(program.fused is not None for program in simulation.engine._rules["ff"])
    assert simulation.run(4, inputs=random_inputs(simulation.network, steps=4)).attrs["torch_compile"] == 1
    assert simulation.engine._fusion == {"ff": True} and simulation.engine.fused_steps == 3


@pytest.mark.gpu
@needs_cuda
def test_cuda_step_peak_memory_is_weights_plus_order_n():
    n = 2048
    simulation = pl.Simulation(rule_network("oja", n_pre=n, n_post=n), trials=1, backend="torch", device="cuda", seed=0)
    simulation.run(1, inputs={"pre.x": np.ones(n)})
    x = np.random.default_rng(0).standard_normal((1, n))
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    simulation.engine.step(2.0, {"pre.x": x}, frozenset({"ff"}))
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before <= 64 * n * 4


def test_population_reductions_are_over_units():
    """Hand values on 3 trials x 4 units whose rows differ, so a reduction over trials instead of
    units gives other numbers (it survived mutation testing: benchmarks/results/mutation.md)."""
    x = np.array([[0.0, 1.0, 2.0, -3.0], [1.0, 1.0, 0.0, 5.0], [-2.0, 0.5, 0.0, 0.0]])
    pop = pl.Population(
        4,
        ["s = sum(x)", "m = max(x)", "n = min(x)", "a = mean(x)"],
        init={"x": 0.0, "s": 0.0, "m": 0.0, "n": 0.0, "a": 0.0},
        name="p",
    )
    expected = {
        "s": np.repeat(x.sum(1, keepdims=True), 4, 1),
        "m": np.repeat(x.max(1, keepdims=True), 4, 1),
        "n": np.repeat(x.min(1, keepdims=True), 4, 1),
        "a": np.repeat(x.mean(1, keepdims=True), 4, 1),
    }
    assert expected["s"][0, 0] == -0.0 + 0.0 + 1.0 + 2.0 - 3.0 and expected["m"][2, 0] == 0.5
    for backend in ("numpy", "torch"):
        simulation = pl.Simulation(pl.Network([pop], []), trials=3, backend=backend, dtype="float64", seed=0)
        simulation.set("p.x", x)
        simulation.advance(1)
        for name, values in expected.items():
            np.testing.assert_allclose(simulation.get(f"p.{name}"), values, err_msg=f"{backend}: {name}")

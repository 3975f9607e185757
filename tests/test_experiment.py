"""Experiment TOML loading: keys, overrides and [sweep] grid validation."""

from __future__ import annotations

import pytest

from plasticity.errors import ConfigError
from plasticity.experiment import apply_overrides, axis_values, load_experiment, parse_experiment

BASE = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
seed = 4
[params]
n = 5
"""


def test_minimal_experiment_and_defaults():
    experiment = parse_experiment('protocol = "sweep_protocols:noisy_mean"')
    assert (experiment.backend, experiment.seed, experiment.dtype, experiment.device) == ("numba", 0, "float32", None)
    assert experiment.params == {} and experiment.axes == {} and experiment.repeats == 1
    assert not experiment.has_sweep


def test_unknown_top_level_key_names_it_and_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'bakend'; valid keys: protocol, backend, seed, dtype"):
        parse_experiment('bakend = "numpy"\n' + BASE)


def test_unknown_parameter_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no parameter 'nn'.*valid parameters: delay, mu, n, scale"):
        parse_experiment(BASE + "nn = 3\n")


@pytest.mark.parametrize(
    "line, message",
    [
        ('backend = "fortran"', r"backend must be one of numpy, numba, torch, got 'fortran'"),
        ("seed = -1", r"seed must be a non-negative integer, got -1"),
        ("seed = true", r"seed must be a non-negative integer"),
        ('dtype = "float16"', r"dtype must be one of float32, float64, got 'float16'"),
        ("device = 3", r"device must be a string"),
    ],
)
def test_bad_runtime_settings(line, message):
    text = 'protocol = "sweep_protocols:noisy_mean"\n' + line + "\n"
    with pytest.raises(ConfigError, match=message):
        parse_experiment(text)


def test_unknown_protocol_and_invalid_toml():
    with pytest.raises(ConfigError, match="unknown protocol 'nope'"):
        parse_experiment('protocol = "nope"')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_experiment("protocol = ")


def test_overrides_are_toml_values_and_bare_words_are_strings():
    experiment = parse_experiment(BASE, ["params.n=7", "params.mu=0.5", "seed=9", "backend=numba"])
    assert experiment.params == {"n": 7, "mu": 0.5}
    assert (experiment.seed, experiment.backend) == (9, "numba")
    document = apply_overrides({}, ["params.name=oja", 'params.label="a b"', "params.list=[1, 2]"])
    assert document == {"params": {"name": "oja", "label": "a b", "list": [1, 2]}}


@pytest.mark.parametrize(
    "override, message",
    [
        ("params.n", r"--set expects KEY=VALUE"),
        ("parms.n=3", r"unknown key 'parms'; valid keys"),
        ("params.n=1 2", r"is not a TOML value"),
        ("params.nn=3", r"no parameter 'nn'"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(BASE, [override])


def test_sweep_table_lists_ranges_and_repeats():
    experiment = parse_experiment(
        BASE + """
[sweep]
mu = {start = 0.02, stop = 0.30, step = 0.02}
scale = [1, 2.5]
delay = {start = 1e-4, stop = 1e-1, num = 4, log = true}
repeats = 3
"""
    )
    assert experiment.has_sweep and experiment.repeats == 3
    assert len(experiment.axes["mu"]) == 15 and experiment.axes["mu"][6] == 0.14 and experiment.axes["mu"][-1] == 0.3
    assert experiment.axes["scale"] == (1.0, 2.5)
    assert experiment.axes["delay"] == pytest.approx((1e-4, 1e-3, 1e-2, 1e-1))
    assert parse_experiment(experiment.to_toml()).config() == experiment.config()


def test_axis_values():
    assert axis_values("n", {"start": 2, "stop": 10, "step": 4}) == (2, 6, 10)
    assert axis_values("n", {"start": 10, "stop": 2, "step": -4}) == (10, 6, 2)
    assert axis_values("x", {"start": 0, "stop": 1, "num": 3}) == (0.0, 0.5, 1.0)
    assert axis_values("rule", ["hebbian", "storkey"]) == ("hebbian", "storkey")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"start": 0, "stop": 1, "step": 0}, r"sweep.x.step must not be 0"),
        ([], r"sweep.x is an empty list"),
        ({"start": 0, "stop": 1, "stop2": 3, "step": 1}, r"unknown range key 'stop2'; valid keys: start, stop"),
        ({"start": 0, "stop": 1}, r"exactly one of 'step' or 'num'"),
        ({"start": 0, "stop": 1, "step": 1, "num": 2}, r"exactly one of 'step' or 'num'"),
        ({"stop": 1, "step": 1}, r"a range needs 'start'"),
        ({"start": 0, "stop": 1, "step": -1}, r"the range is empty"),
        ({"start": 0, "stop": 1, "num": 0}, r"num must be a positive integer"),
        ({"start": 0, "stop": 1, "num": 3, "log": True}, r"log range needs start > 0"),
        ({"start": 1, "stop": 10, "step": 2, "log": True}, r"log = true needs 'num'"),
        ({"start": "a", "stop": 1, "step": 1}, r"sweep.x.start must be a finite number"),
        ([1, "a"], r"values must all be of one kind"),
        ([[1], [2]], r"values must be numbers, strings or booleans"),
        ([1, 1], r"values must be distinct"),
        ("abc", r"must be a list of values or a range table"),
    ],
)
def test_bad_axes(spec, message):
    with pytest.raises(ConfigError, match=message):
        axis_values("x", spec)


@pytest.mark.parametrize(
    "table, message",
    [
        ("mu = [0.0]\nbogus = [1]", r"\[sweep\] names 'bogus'.*valid keys: repeats, seed_by, delay, mu, n, scale"),
        ("repeats = 0", r"sweep.repeats must be a positive integer"),
        ("n = [1, 2]", r"'n' is set in both \[params\] and \[sweep\]"),
    ],
)
def test_bad_sweep_tables(table, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(BASE + "[sweep]\n" + table + "\n")


def test_load_experiment_from_file(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(BASE)
    assert load_experiment(path, ["params.n=2"]).params == {"n": 2}
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["a:b:c", "my-module:f", ":f", "m:", "m:f()", "m..n:f"])
def test_a_protocol_not_of_the_form_module_function_is_refused(name):
    with pytest.raises(ConfigError, match=r"is not of the form 'package.module:function'"):
        parse_experiment(f'protocol = "{name}"')


def test_a_protocol_module_runs_only_when_it_defines_the_function(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    (tmp_path / "side_effects.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef present(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"module 'side_effects' \(.*side_effects.py\) defines no 'absent'"):
        parse_experiment('protocol = "side_effects:absent"')
    with pytest.raises(ConfigError, match=r"no module 'no_such_module_here' on the Python path"):
        parse_experiment('protocol = "no_such_module_here:f"')
    assert not marker.exists()  # refused from its source, without running it
    with pytest.raises(ConfigError, match=r"protocol 'side_effects:present': .*must accept backend"):
        parse_experiment('protocol = "side_effects:present"')
    assert marker.exists()

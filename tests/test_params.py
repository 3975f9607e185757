"""Parameter specs (plasticity.params): one way to check every protocol's and constructor's input."""

import math
import re
from typing import Annotated

import numpy as np
import pytest
import xarray as xr

import plasticity as pl
from plasticity.params import Choice, Flag, Int, Maybe, Real, RuleSpec, Sizes, check_params, specs_of
from plasticity.protocols import _protocol_of, get_protocol
from plasticity.rules import get_rule, resolve_rule


@pytest.mark.parametrize(
    "spec, good, bad, message",
    [
        (Int(1, 10), 3, [0, 11, 2.0, True, "3", None], r"an integer in \[1, 10\]"),
        (Real(0, 1, low_open=True), 0.5, [0.0, 1.5, math.nan, math.inf, "0.5", True], r"a number in \(0, 1\]"),
        (Real(), -3, [math.nan, -math.inf, "x"], "a finite number"),
        (Choice("a", "b"), "a", ["c", 1, None], "one of 'a', 'b'"),
        (Flag(), True, [1, "true", None], "true or false"),
        (Sizes(1, 100, min_length=2), [3, 4], [[3], "34", [3, 0], [3, 1.5]], "a list of at least 2 integers"),
        (Maybe(Int(0)), None, [-1, 1.5], "an integer >= 0, or omitted"),
    ],
)
def test_a_spec_accepts_its_values_and_names_the_parameter_value_and_valid_values(spec, good, bad, message):
    spec("p", good)
    for value in bad:
        with pytest.raises(pl.ConfigError, match=rf"^p must be {message}.*; got {re.escape(repr(value))}$"):
            spec("p", value)


def test_real_returns_floats_and_int_returns_ints():
    assert isinstance(Real()("x", np.int64(3)), float)
    assert isinstance(Int()("x", np.int64(3)), int)


def _toy(*, n: Annotated[int, Int(1, 100)] = 4, eta: float = 0.1, rule: Annotated[object, RuleSpec()] = "hebb",
         backend="numba", seed=0, dtype="float32", device=None) -> xr.Dataset:
    return xr.Dataset({"n": ((), n), "eta": ((), eta)}, attrs={"rule": rule.name})


def test_a_protocol_checks_its_parameters_from_python_and_from_a_file():
    proto = _protocol_of("toy", _toy)
    assert set(proto.specs) == {"n", "eta", "rule"}
    with pytest.raises(pl.ConfigError, match=r"^n must be an integer in \[1, 100\]; got 1000"):
        proto.validate({"n": 1000})
    with pytest.raises(pl.ConfigError, match="^eta must be a finite number; got nan"):
        proto.function(eta=float("nan"))
    with pytest.raises(pl.ConfigError, match="^seed must be a non-negative integer"):
        proto.function(seed=-1)
    assert proto.function(rule={"equations": ["w += x_pre"]}).attrs["rule"] == "user rule"


def test_a_default_its_own_declaration_refuses_is_caught_when_registered():
    def bad(*, n: Annotated[int, Int(1, 10)] = 0, backend="numba", seed=0, dtype="float32", device=None):
        return xr.Dataset()

    with pytest.raises(pl.ConfigError, match="n must be"):
        _protocol_of("bad", bad)


def test_specs_come_from_plain_annotations_too():
    assert set(specs_of(get_protocol("pca").function, ["n", "eta", "rule"])) == {"n", "eta", "rule"}
    assert check_params({"n": Int(1)}, {"n": 2, "other": "x"}) == {"n": 2, "other": "x"}


def test_a_rule_as_a_table_of_equations():
    rule = resolve_rule({"equations": ["w += eta * x_pre * y_post"], "params": {"eta": 0.5}, "name": "mine"})
    assert rule.name == "mine" and rule.params == {"eta": 0.5}
    assert resolve_rule(rule.as_table()) == rule
    assert resolve_rule("oja") is get_rule("oja")
    with pytest.raises(pl.ConfigError, match="rule has unknown key 'eqs'; valid keys: equations"):
        resolve_rule({"eqs": ["w += 1"]})
    with pytest.raises(pl.ConfigError, match="rule.equations must be a non-empty list"):
        resolve_rule({"equations": []})
    with pytest.raises(pl.ConfigError, match="rule.params.eta must be a number"):
        resolve_rule({"equations": ["w += eta"], "params": {"eta": "x"}})
    with pytest.raises(pl.ConfigError, match="rule: unknown rule 'ojja'"):
        resolve_rule("ojja")
    with pytest.raises(pl.EquationError, match="column"):
        resolve_rule({"equations": ["w += eta *"], "params": {"eta": 1.0}})


def test_rule_parameters_are_finite_numbers():
    with pytest.raises(pl.ConfigError, match="rule parameter 'eta' must be a finite number; got 'x'"):
        pl.Rule(["w += eta * x_pre"], params={"eta": "x"})
    with pytest.raises(pl.ConfigError, match="rule parameter 'eta' must be a finite number; got nan"):
        pl.Rule(["w += eta * x_pre"], params={"eta": math.nan})

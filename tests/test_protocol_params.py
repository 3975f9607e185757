"""Every parameter of every registered protocol is checked the same way, before anything runs.

For each parameter of each protocol in ``plasticity.protocols.list_protocols()`` (those added
later included) the test feeds ``Protocol.validate`` a value of the wrong type, NaN, a huge value
and a negative one, and expects a ConfigError that names the parameter whenever its declared
spec does not admit the value. A parameter must declare a spec (``Annotated[..., Spec]``), and a
numeric one a finite range, so that NaN, wrong types and huge values are refused everywhere;
only a negative value may be valid, where the declared range says so.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import plasticity as pl
from plasticity.params import Choice, Flag, Int, Maybe, Real, RuleSpec, SeedSpec, Sizes, Spec, Text
from plasticity.protocols import list_protocols

#: Protocols being rewritten with declared specs on other branches; the coordinator empties this
#: list as each lands. Not strict: their string parameters pass already.
AWAITING_SPECS: set[str] = set()

PROTOCOLS = list_protocols()


def _bounded(spec: Spec) -> bool:
    """Whether a numeric spec declares a finite range (non-numeric specs need none)."""
    if isinstance(spec, Maybe):
        return _bounded(spec.spec)
    if isinstance(spec, (Int, Real)):
        return spec.low is not None and spec.high is not None
    if isinstance(spec, Sizes):
        return spec.high is not None
    return isinstance(spec, (Choice, Flag, Text, RuleSpec, SeedSpec))


def _admits_negative(spec: Spec) -> bool:
    if isinstance(spec, Maybe):
        return _admits_negative(spec.spec)
    return isinstance(spec, (Int, Real)) and (spec.low is None or spec.low <= -1)


def _probes(spec: Spec) -> dict[str, Any]:
    """A value of the wrong type, NaN, a huge and a negative value, in the form ``spec`` takes."""
    inner = spec.spec if isinstance(spec, Maybe) else spec
    if isinstance(inner, Sizes):
        return {"wrong type": "64, 128", "nan": [math.nan, 2], "huge": [10**18, 2], "negative": [-1, 2]}
    if isinstance(inner, Int):
        return {"wrong type": "1", "nan": math.nan, "huge": 10**18, "negative": -1}
    if isinstance(inner, Real):
        return {"wrong type": "0.5", "nan": math.nan, "huge": 1e300, "negative": -1.0}
    wrong = "true" if isinstance(inner, Flag) else 1
    return {"wrong type": wrong, "nan": math.nan, "huge": 1e300, "negative": -1}


_CASES = [
    pytest.param(name, parameter, marks=[pytest.mark.xfail(strict=False, reason="specs land with its rewrite")]
                 if name in AWAITING_SPECS else [], id=f"{name}.{parameter}")
    for name, proto in PROTOCOLS.items()
    for parameter in proto.defaults
]


@pytest.mark.parametrize("name, parameter", _CASES)
def test_every_protocol_parameter_is_checked_by_its_declared_spec(name, parameter):
    proto = PROTOCOLS[name]
    spec = proto.specs.get(parameter)
    assert spec is not None, f"{name}: parameter {parameter!r} declares no spec (Annotated[..., Spec] in its signature)"
    assert _bounded(spec), f"{name}: parameter {parameter!r} declares {spec!r}; a numeric parameter declares a finite range"
    for probe, value in _probes(spec).items():
        if probe == "negative" and _admits_negative(spec):
            proto.validate({parameter: value})
            continue
        with pytest.raises(pl.ConfigError) as raised:
            proto.validate({parameter: value})
        message = str(raised.value)
        assert message.startswith((f"{parameter} ", f"{parameter}:", f"{parameter}.")), f"{probe} {value!r}: {message}"


def test_the_awaiting_list_names_registered_protocols():
    assert AWAITING_SPECS <= set(PROTOCOLS)

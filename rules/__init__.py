"""The library of named learning rules.

Each rule is a few equations with parameter defaults, a description and the paper it
comes from. ``plasticity rules`` lists them; :func:`get_rule` returns one by name.
"""

from __future__ import annotations

from plasticity.errors import ConfigError
from plasticity.rule import Rule
from plasticity.rules.component_analysis import OJA, SANGER
from plasticity.rules.decorrelation import FOLDIAK
from plasticity.rules.hebbian import BCM, BCM_3Q, COVARIANCE, HEBB
from plasticity.rules.neuromodulated import THREE_FACTOR
from plasticity.rules.predictive_coding import PC_ADAM, PC_LINEAR_3Q, PC_SGD
from plasticity.rules.supervised import DELTA, PERCEPTRON

__all__ = ["get_rule", "list_rules", "describe_rule", "register_rule"]

_RULES: dict[str, Rule] = {}


def register_rule(rule: Rule) -> Rule:
    """Add ``rule`` to the library under ``rule.name``."""
    if not rule.name:
        raise ValueError("a library rule needs a name")
    if rule.name in _RULES and _RULES[rule.name] is not rule:
        raise ValueError(f"rule {rule.name!r} is registered twice")
    _RULES[rule.name] = rule
    return rule


for _rule in (HEBB, OJA, SANGER, BCM, BCM_3Q, COVARIANCE, FOLDIAK, DELTA, PERCEPTRON, THREE_FACTOR):
    register_rule(_rule)

for _rule in (PC_SGD, PC_ADAM, PC_LINEAR_3Q):
    register_rule(_rule)


def list_rules() -> dict[str, Rule]:
    """Every built-in rule by name."""
    return dict(_RULES)


def get_rule(name: str) -> Rule:
    """The built-in rule ``name``; an unknown name is a ConfigError listing the valid ones."""
    try:
        return _RULES[name]
    except KeyError:
        raise ConfigError(f"unknown rule {name!r}; built-in rules: {', '.join(sorted(_RULES))}") from None


def describe_rule(name: str) -> str:
    """Text describing rule ``name``: equations, parameters, cost and reference."""
    return get_rule(name).describe()

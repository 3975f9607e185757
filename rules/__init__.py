"""The library of named learning rules.

Each rule is a few equations with parameter defaults, a description and the paper it
comes from. ``plasticity rules`` lists them; :func:`get_rule` returns one by name.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from plasticity.errors import ConfigError
from plasticity.rule import Rule
from plasticity.rules.component_analysis import OJA, SANGER
from plasticity.rules.decorrelation import FOLDIAK
from plasticity.rules.hebbian import BCM, BCM_3Q, COVARIANCE, HEBB
from plasticity.rules.neuromodulated import THREE_FACTOR
from plasticity.rules.predictive_coding import PC_ADAM, PC_LINEAR_3Q, PC_SGD
from plasticity.rules.storage import STORAGE_RULES
from plasticity.rules.supervised import DELTA, PERCEPTRON

__all__ = ["get_rule", "list_rules", "describe_rule", "register_rule", "resolve_rule", "RULE_TABLE_KEYS"]

#: Keys of a rule written as a table (a TOML ``[params.rule]`` table or a dict).
RULE_TABLE_KEYS = ("equations", "params", "form", "modulators", "init", "name", "reference", "description")

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

for _rule in (PC_SGD, PC_ADAM, PC_LINEAR_3Q, *STORAGE_RULES):
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


def resolve_rule(value: Any, *, parameter: str = "rule") -> Rule:
    """A :class:`Rule` from a library name, a table of equations or a ``Rule``.

    A table needs ``equations`` (a list of strings) and may give the other
    :data:`RULE_TABLE_KEYS`; an unknown key or a wrong type is a ConfigError naming
    ``parameter``, a bad equation an EquationError naming the equation and column.
    """
    if isinstance(value, Rule):
        return value
    if isinstance(value, str):
        try:
            return get_rule(value)
        except ConfigError as error:
            raise ConfigError(f"{parameter}: {error}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{parameter} must be a rule name ({', '.join(sorted(_RULES))}), a table of equations "
            f"(keys {', '.join(RULE_TABLE_KEYS)}) or a Rule; got {value!r}"
        )
    unknown = sorted(set(value) - set(RULE_TABLE_KEYS))
    if unknown:
        raise ConfigError(
            f"{parameter} has unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(RULE_TABLE_KEYS)}"
        )
    equations = value.get("equations")
    if isinstance(equations, str):
        equations = [equations]
    if not isinstance(equations, Sequence) or not equations or not all(isinstance(e, str) for e in equations):
        raise ConfigError(f"{parameter}.equations must be a non-empty list of equation strings; got {equations!r}")
    for key, kind in (("params", Mapping), ("init", Mapping), ("modulators", Sequence)):
        if key in value and (not isinstance(value[key], kind) or isinstance(value[key], str)):
            raise ConfigError(f"{parameter}.{key} must be a {'table' if kind is Mapping else 'list'}; got {value[key]!r}")
    for key, numbers in (("params", value.get("params", {})), ("init", value.get("init", {}))):
        for name, number in numbers.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number != number:
                raise ConfigError(f"{parameter}.{key}.{name} must be a number; got {number!r}")
    for key in ("form", "name", "reference", "description"):
        if key in value and not isinstance(value[key], str):
            raise ConfigError(f"{parameter}.{key} must be a string; got {value[key]!r}")
    table = dict(value)
    table["equations"] = tuple(equations)
    table.setdefault("name", "user rule")
    return Rule(**table)

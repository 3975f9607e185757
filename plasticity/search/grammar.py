"""The space of small rules: a grammar of local terms and ``+ - *``, enumerated and deduplicated.

A :class:`Grammar` names the local terms a rule may read (``x_pre``, ``y_post``, ``w``, a
target ``target_post``, an error ``e_post``, a global modulator such as ``m``), numeric
constants, the operations (a subset of ``+ - *``), the most operations per equation and the
most equations (one to three). A rule of ``E`` equations defines ``E - 1`` auxiliary
quantities, each an expression over the terms and the auxiliaries before it, and ends with
the weight update ``w += eta * F``::

    q1_post = y_post * y_post                # an auxiliary: its level follows from what it reads
    w += eta * (x_pre * y_post - q1_post * w)

An auxiliary that reads only post-side terms lives on the post units (``q1_post``), only
pre-side ones on the pre units (``q1_pre``); anything else on the synapses (``q1``). A rule of
three equations uses only ``+ - *`` over local quantities, so it is a strict 3Q rule.

Every rule of ``+ - *`` is a polynomial of the terms once the auxiliaries are substituted
(:mod:`plasticity.search.polynomial`); two rules whose update polynomials differ only by a
positive factor are the same rule at another learning rate. :func:`enumerate_rules` keeps the
first rule (fewest equations, then fewest operations) of every distinct normalised polynomial
and drops rules whose update is zero. It counts what the grammar yields (every expression tree
within the bounds, a number known before any work) and refuses a grammar that yields more
than its ``limit`` unless told otherwise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator, Mapping, Sequence

from plasticity.errors import ConfigError
from plasticity.rule import Rule
from plasticity.search.polynomial import Polynomial, exact

__all__ = [
    "Grammar",
    "Candidate",
    "Enumeration",
    "enumerate_rules",
    "count_yielded",
    "term_level",
    "GRAMMAR_KEYS",
    "OPERATIONS",
    "DEFAULT_LIMIT",
    "MAX_OPERATIONS",
    "MAX_EQUATIONS",
    "LEARNING_RATE",
]

#: Keys of a grammar table (``[grammar]`` of a search file).
GRAMMAR_KEYS = ("terms", "constants", "operations", "max_operations", "max_equations", "limit")
OPERATIONS = ("+", "-", "*")
#: A grammar that yields more candidates than this is refused unless its limit is raised.
DEFAULT_LIMIT = 1_000_000
MAX_OPERATIONS = 6
MAX_EQUATIONS = 3
MAX_TERMS = 16
#: The learning-rate parameter of every candidate's weight update.
LEARNING_RATE = "eta"
#: Names of the auxiliary quantities, in order (``q1``, ``q1_post``, ``q1_pre``, ...).
AUXILIARY = ("q1", "q2")
_PLACEHOLDER = "\x00"  # marks an auxiliary's name in a text until its level is known


def term_level(name: str) -> str:
    """``"pre"``, ``"post"``, ``"synapse"`` (``w`` and other unsuffixed synapse variables of a
    rule are not terms: ``w`` is the only synapse term) or ``"global"`` (a modulator)."""
    if name == "w":
        return "synapse"
    if name.endswith("_pre") and len(name) > 4:
        return "pre"
    if name.endswith("_post") and len(name) > 5:
        return "post"
    return "global"


@dataclass(frozen=True)
class Grammar:
    """Local terms, constants and operations, with bounds on operations per equation and on
    the number of equations (see the module docstring)."""

    terms: tuple[str, ...]
    constants: tuple[float, ...] = (1.0,)
    operations: tuple[str, ...] = OPERATIONS
    max_operations: int = 2
    max_equations: int = 1
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", _names(self.terms))
        object.__setattr__(self, "constants", _constants(self.constants))
        object.__setattr__(self, "operations", _operations(self.operations))
        for key, high in (("max_operations", MAX_OPERATIONS), ("max_equations", MAX_EQUATIONS)):
            value = getattr(self, key)
            low = 0 if key == "max_operations" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"grammar.{key} must be an integer in [{low}, {high}]; got {value!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError(f"grammar.limit must be a positive integer (most candidates yielded); got {self.limit!r}")
        if self.max_operations > 0 and not self.operations:
            raise ConfigError("grammar.operations is empty but max_operations > 0; give some of '+', '-', '*'")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Grammar":
        """A grammar from a TOML ``[grammar]`` table; unknown keys are errors listing the valid ones."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"grammar must be a table with keys {', '.join(GRAMMAR_KEYS)}; got {table!r}")
        unknown = sorted(set(table) - set(GRAMMAR_KEYS))
        if unknown:
            raise ConfigError(f"grammar has unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(GRAMMAR_KEYS)}")
        if "terms" not in table:
            raise ConfigError("grammar.terms is missing: list the local terms a rule may read, e.g. ['x_pre', 'y_post', 'w']")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in table.items()})

    def as_table(self) -> dict[str, Any]:
        return {
            "terms": list(self.terms),
            "constants": list(self.constants),
            "operations": list(self.operations),
            "max_operations": self.max_operations,
            "max_equations": self.max_equations,
            "limit": self.limit,
        }

    @property
    def modulators(self) -> tuple[str, ...]:
        return tuple(term for term in self.terms if term_level(term) == "global")

    def leaves(self) -> int:
        return len(self.terms) + len(self.constants)


def _names(terms: Any) -> tuple[str, ...]:
    if isinstance(terms, str) or not isinstance(terms, Sequence):
        raise ConfigError(f"grammar.terms must be a list of names such as 'x_pre', 'y_post', 'w'; got {terms!r}")
    names = tuple(terms)
    if not names:
        raise ConfigError("grammar.terms is empty, so the grammar yields no rule; list the local terms a rule may read (e.g. 'x_pre', 'y_post', 'w')")
    if len(names) > MAX_TERMS:
        raise ConfigError(f"grammar.terms has {len(names)} names; at most {MAX_TERMS} are allowed")
    reserved = {LEARNING_RATE, "t", "dt"}
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or "__" in name:
            raise ConfigError(f"grammar.terms: {name!r} is not a name; terms are identifiers such as 'x_pre', 'y_post', 'w'")
        base = name.removesuffix("_pre").removesuffix("_post")
        if name in reserved or base in AUXILIARY:
            raise ConfigError(
                f"grammar.terms: {name!r} is reserved ({LEARNING_RATE!r} is the learning rate, t and dt the clock, "
                f"{', '.join(AUXILIARY)} the auxiliary quantities); rename the term"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"grammar.terms must be distinct; got {list(names)}")
    return names


def _constants(constants: Any) -> tuple[float, ...]:
    if isinstance(constants, (str, bytes)) or not isinstance(constants, Sequence):
        raise ConfigError(f"grammar.constants must be a list of numbers; got {constants!r}")
    values = []
    for value in constants:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"grammar.constants must be finite numbers; got {value!r}")
        values.append(float(value))
    if len({exact(v) for v in values}) != len(values):
        raise ConfigError(f"grammar.constants must be distinct; got {list(constants)}")
    return tuple(values)


def _operations(operations: Any) -> tuple[str, ...]:
    if isinstance(operations, str) or not isinstance(operations, Sequence):
        raise ConfigError(f"grammar.operations must be a list of '+', '-', '*'; got {operations!r}")
    for op in operations:
        if op not in OPERATIONS:
            raise ConfigError(f"grammar.operations: {op!r} is not allowed; valid operations: '+', '-', '*'")
    if len(set(operations)) != len(operations):
        raise ConfigError(f"grammar.operations must be distinct; got {list(operations)}")
    return tuple(op for op in OPERATIONS if op in operations)


# ------------------------------------------------------------------------------------- counting


def _trees(operations: int, leaves: int, kinds: int) -> int:
    """Expression trees with exactly ``operations`` binary operations of ``kinds`` kinds over
    ``leaves`` leaves: Catalan(operations) shapes, each leaf and operation chosen freely."""
    return math.comb(2 * operations, operations) // (operations + 1) * leaves ** (operations + 1) * kinds**operations


def _expressions(grammar: Grammar, extra_leaves: int) -> int:
    leaves = grammar.leaves() + extra_leaves
    return sum(_trees(k, leaves, len(grammar.operations)) for k in range(grammar.max_operations + 1))


def count_yielded(grammar: Grammar) -> dict[int, int]:
    """How many rules the grammar yields with each number of equations: every choice of an
    expression tree for each equation within the bounds (before any deduplication)."""
    return {
        equations: math.prod(_expressions(grammar, extra) for extra in range(equations))
        for equations in range(1, grammar.max_equations + 1)
    }


# ----------------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One deduplicated rule: its equations, the normalised polynomial of its weight update over
    the terms (auxiliaries and definitions substituted) and the operations written in it."""

    index: int
    equations: tuple[str, ...]
    polynomial: Polynomial = field(compare=False)
    operations: int
    modulators: tuple[str, ...] = ()

    @property
    def strict(self) -> bool:
        """Whether the rule is a strict 3Q rule: exactly three equations of ``+ - *``."""
        return len(self.equations) == 3

    def rule(self, eta: float) -> Rule:
        """The candidate as a :class:`~plasticity.rule.Rule` with learning rate ``eta``."""
        return Rule(
            self.equations, params={LEARNING_RATE: eta}, modulators=self.modulators,
            form="strict" if self.strict else "free", name=f"candidate {self.index}",
        )

    def text(self) -> str:
        return "; ".join(self.equations)


@dataclass
class Enumeration:
    """What a grammar yields: the deduplicated candidates and the counts behind them."""

    grammar: Grammar
    candidates: list[Candidate]
    yielded: dict[int, int]

    @property
    def total_yielded(self) -> int:
        return sum(self.yielded.values())

    def summary(self) -> str:
        per = ", ".join(f"{count:,} with {e} equation{'s' if e > 1 else ''}" for e, count in self.yielded.items())
        return (
            f"the grammar yields {self.total_yielded:,} rules ({per}); {len(self.candidates):,} remain after "
            "deduplication (rules equal up to a positive factor are one; a zero update is dropped)"
        )


@dataclass(frozen=True)
class _Expression:
    text: str
    precedence: int  # 1: a sum or difference, 2: a product, 3: a leaf
    operations: int
    polynomial: Polynomial


def _number_text(value: float) -> str:
    text = repr(value) if not float(value).is_integer() else str(int(value))
    return f"({text})" if value < 0 else text


def _combine(op: str, left: _Expression, right: _Expression) -> _Expression:
    if op == "*":
        a = f"({left.text})" if left.precedence == 1 else left.text
        b = f"({right.text})" if right.precedence == 1 else right.text
        return _Expression(f"{a} * {b}", 2, left.operations + right.operations + 1, left.polynomial * right.polynomial)
    b = f"({right.text})" if op == "-" and right.precedence == 1 else right.text
    polynomial = left.polynomial + right.polynomial if op == "+" else left.polynomial - right.polynomial
    return _Expression(f"{left.text} {op} {b}", 1, left.operations + right.operations + 1, polynomial)


def _distinct_expressions(grammar: Grammar, leaves: Sequence[tuple[str, Polynomial]]) -> list[_Expression]:
    """One expression (the first with the fewest operations) for every distinct polynomial an
    expression within the bounds can write, in order of operations. An expression of ``k``
    operations combines two of fewer, and replacing either by another of the same polynomial
    changes nothing, so combining only the distinct ones of each size finds every polynomial."""
    by_size: list[list[_Expression]] = [[_Expression(text, 3, 0, polynomial) for text, polynomial in leaves]]
    seen = {expression.polynomial for expression in by_size[0]}
    for size in range(1, grammar.max_operations + 1):
        found = []
        for left_size in range(size):
            for left in by_size[left_size]:
                for right in by_size[size - 1 - left_size]:
                    for op in grammar.operations:
                        expression = _combine(op, left, right)
                        if expression.polynomial not in seen:
                            seen.add(expression.polynomial)
                            found.append(expression)
        by_size.append(found)
    return [expression for size in by_size for expression in size]


def _leaves(grammar: Grammar, auxiliaries: int) -> list[tuple[str, Polynomial]]:
    leaves = [(term, Polynomial.variable(term)) for term in grammar.terms]
    leaves += [(_number_text(value), Polynomial.constant(value)) for value in grammar.constants]
    leaves += [(_PLACEHOLDER + AUXILIARY[i] + _PLACEHOLDER, Polynomial.variable(AUXILIARY[i])) for i in range(auxiliaries)]
    return leaves


def _level(names: set[str], levels: Mapping[str, str]) -> str:
    sides = {levels[name] for name in names} - {"global"}
    if not sides:
        return "synapse"
    return sides.pop() if len(sides) == 1 and sides <= {"pre", "post"} else "synapse"


def _written(name: str, level: str) -> str:
    return name if level == "synapse" else f"{name}_{level}"


def _final(text: str, precedence: int) -> str:
    return f"w += {LEARNING_RATE} * " + (f"({text})" if precedence == 1 else text)


def enumerate_rules(
    grammar: Grammar,
    *,
    definitions: Mapping[str, Polynomial] | None = None,
    force: bool = False,
) -> Enumeration:
    """Every distinct rule of ``grammar``, deduplicated by the normalised polynomial of its
    weight update with ``definitions`` (derived terms, e.g. ``e_post`` as
    ``target_post - y_post``) and the auxiliaries substituted.

    A grammar that yields more rules than ``grammar.limit`` is refused with the count unless
    ``force``; one that yields no rule whose update is non-zero is an error.
    """
    yielded = count_yielded(grammar)
    total = sum(yielded.values())
    if total > grammar.limit and not force:
        per = ", ".join(f"{count:,} with {e} equation{'s' if e > 1 else ''}" for e, count in yielded.items())
        raise ConfigError(
            f"the grammar would yield {total:,} rules ({per}), more than its limit of {grammar.limit:,}; "
            "lower max_operations or max_equations, remove terms or constants, or raise grammar.limit "
            "(or pass force / --force) to enumerate them anyway"
        )
    definitions = dict(definitions or {})
    levels = {term: term_level(term) for term in grammar.terms}
    kept: dict[Polynomial, Candidate] = {}
    for equations in range(1, grammar.max_equations + 1):
        stages = [_distinct_expressions(grammar, _leaves(grammar, count)) for count in range(equations)]
        for chosen, operations, update in _updates(stages, equations):
            key = update.substitute(definitions).normalized()
            if key.is_zero() or key in kept:
                continue
            texts = _texts(chosen, levels)
            read = set().union(*(expression.polynomial.names() for expression in chosen))
            modulators = tuple(name for name in grammar.modulators if name in read)
            kept[key] = Candidate(len(kept), texts, key, operations, modulators)
    if not kept:
        raise ConfigError(
            f"the grammar yields no rule that changes the weights ({total:,} yielded, every update is zero): "
            f"terms {list(grammar.terms)}, constants {list(grammar.constants)}, operations {list(grammar.operations)}, "
            f"max_operations {grammar.max_operations}; add terms or operations"
        )
    return Enumeration(grammar, list(kept.values()), yielded)


def _updates(stages: list[list[_Expression]], equations: int) -> Iterator[tuple[tuple[_Expression, ...], int, Polynomial]]:
    """``(expressions, operations, update polynomial)`` of every rule with ``equations`` equations
    whose auxiliaries are all read by a later equation, in order of operations."""
    substituted: dict[tuple[int, ...], Polynomial] = {}  # an auxiliary's polynomial, by the choices up to it

    def value(indices: tuple[int, ...]) -> Polynomial:
        if indices not in substituted:
            earlier = {AUXILIARY[p]: value(indices[: p + 1]) for p in range(len(indices) - 1)}
            substituted[indices] = stages[len(indices) - 1][indices[-1]].polynomial.substitute(earlier)
        return substituted[indices]

    combinations = [
        indices for indices in itertools.product(*(range(len(stage)) for stage in stages))
        if all(any(AUXILIARY[a] in stages[p][indices[p]].polynomial.names() for p in range(a + 1, equations))
               for a in range(equations - 1))
    ]
    operations = [sum(stages[p][i].operations for p, i in enumerate(indices)) for indices in combinations]
    for position in sorted(range(len(combinations)), key=operations.__getitem__):
        indices = combinations[position]
        chosen = tuple(stages[p][i] for p, i in enumerate(indices))
        if equations == 1:
            yield chosen, operations[position], chosen[0].polynomial
        else:
            earlier = {AUXILIARY[p]: value(indices[: p + 1]) for p in range(equations - 1)}
            yield chosen, operations[position], chosen[-1].polynomial.substitute(earlier)


def _texts(chosen: tuple[_Expression, ...], levels: Mapping[str, str]) -> tuple[str, ...]:
    """The equations of a rule: its auxiliaries named by their levels, then the weight update."""
    levels = dict(levels)
    names: dict[str, str] = {}
    texts = []
    for position, expression in enumerate(chosen):
        text = expression.text
        for auxiliary, written in names.items():
            text = text.replace(_PLACEHOLDER + auxiliary + _PLACEHOLDER, written)
        if position == len(chosen) - 1:
            texts.append(_final(text, expression.precedence))
            break
        auxiliary = AUXILIARY[position]
        level = _level(expression.polynomial.names(), levels)
        names[auxiliary] = _written(auxiliary, level)
        levels[auxiliary] = level
        texts.append(f"{names[auxiliary]} = {text}")
    return tuple(texts)

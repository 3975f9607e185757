"""Exact polynomials over named quantities: the canonical form of a rule of ``+ - *``.

An expression that uses only addition, subtraction and multiplication of names and numbers
is a polynomial. :class:`Polynomial` expands it into monomials (a sorted tuple of
``(name, power)`` pairs) with rational coefficients (:class:`fractions.Fraction`, so that
``0.1 + 0.2`` and ``0.3`` compare equal and nothing depends on rounding), and two
expressions are the same rule exactly when their expansions are equal. The rule search
(:mod:`plasticity.search`) deduplicates its candidates with it.

This is not the separable algebra the backends use to apply updates as outer products
(which keeps one-sided factors whole and float coefficients); it is the exact, fully
expanded form that equality needs.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Mapping

from plasticity.equations.tree import Binary, Const, Name, Node, Unary
from plasticity.errors import EquationError

__all__ = ["Monomial", "Polynomial", "exact"]

#: A monomial: ``((name, power), ...)`` sorted by name, powers >= 1; ``()`` is the constant 1.
Monomial = tuple[tuple[str, int], ...]


def exact(value: float | int | Fraction) -> Fraction:
    """``value`` as a Fraction, read from its shortest decimal form (``0.1`` is 1/10)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(repr(float(value)))


def _times(left: Monomial, right: Monomial) -> Monomial:
    powers = dict(left)
    for name, power in right:
        powers[name] = powers.get(name, 0) + power
    return tuple(sorted(powers.items()))


class Polynomial:
    """A polynomial with rational coefficients; immutable, hashable, comparable for equality."""

    __slots__ = ("terms", "_key", "_names")

    def __init__(self, terms: Mapping[Monomial, Fraction | int] | None = None):
        clean = {monomial: Fraction(coef) for monomial, coef in (terms or {}).items() if coef != 0}
        self.terms: dict[Monomial, Fraction] = dict(sorted(clean.items()))
        self._key = tuple(self.terms.items())
        self._names: frozenset[str] | None = None

    @classmethod
    def _of(cls, terms: dict[Monomial, Fraction]) -> "Polynomial":
        """From Fraction coefficients, dropping zeros (no conversion: arithmetic's fast path)."""
        polynomial = cls.__new__(cls)
        polynomial.terms = dict(sorted((m, c) for m, c in terms.items() if c))
        polynomial._key = tuple(polynomial.terms.items())
        polynomial._names = None
        return polynomial

    # construction ------------------------------------------------------------------------------
    @classmethod
    def constant(cls, value: float | int | Fraction) -> "Polynomial":
        return cls({(): exact(value)})

    @classmethod
    def variable(cls, name: str) -> "Polynomial":
        return cls({((name, 1),): Fraction(1)})

    @classmethod
    def from_node(cls, node: Node, what: str = "the expression") -> "Polynomial":
        """The expansion of an expression tree of names, numbers, ``+ - *``, unary minus and
        non-negative integer powers; anything else is an EquationError naming ``what``."""
        if isinstance(node, Const):
            return cls.constant(node.value)
        if isinstance(node, Name):
            return cls.variable(node.name)
        if isinstance(node, Unary) and node.op == "-":
            return -cls.from_node(node.operand, what)
        if isinstance(node, Binary) and node.op in ("+", "-", "*"):
            left, right = cls.from_node(node.left, what), cls.from_node(node.right, what)
            return {"+": left + right, "-": left - right, "*": left * right}[node.op]
        if isinstance(node, Binary) and node.op == "**" and isinstance(node.right, Const):
            power = node.right.value
            if float(power).is_integer() and 0 <= power <= 8:
                result = cls.constant(1)
                base = cls.from_node(node.left, what)
                for _ in range(int(power)):
                    result = result * base
                return result
        raise EquationError(
            f"{what} is not a polynomial: it uses {type(node).__name__.lower()} "
            f"{getattr(node, 'op', getattr(node, 'func', ''))!s}; expected names, numbers, +, - and *".replace("  ", " ")
        )

    # arithmetic --------------------------------------------------------------------------------
    def __add__(self, other: "Polynomial") -> "Polynomial":
        terms = dict(self.terms)
        for monomial, coef in other.terms.items():
            terms[monomial] = terms[monomial] + coef if monomial in terms else coef
        return Polynomial._of(terms)

    def __neg__(self) -> "Polynomial":
        return Polynomial._of({monomial: -coef for monomial, coef in self.terms.items()})

    def __sub__(self, other: "Polynomial") -> "Polynomial":
        return self + (-other)

    def __mul__(self, other: "Polynomial") -> "Polynomial":
        terms: dict[Monomial, Fraction] = {}
        for left, a in self.terms.items():
            for right, b in other.terms.items():
                monomial = _times(left, right) if left and right else left or right
                product = a * b
                terms[monomial] = terms[monomial] + product if monomial in terms else product
        return Polynomial._of(terms)

    def scaled(self, factor: Fraction) -> "Polynomial":
        return Polynomial._of({monomial: coef * factor for monomial, coef in self.terms.items()})

    def substitute(self, values: Mapping[str, "Polynomial"]) -> "Polynomial":
        """Every name in ``values`` replaced by its polynomial."""
        if self.names().isdisjoint(values):
            return self
        terms: dict[Monomial, Fraction] = {}
        for monomial, coef in self.terms.items():
            term = Polynomial._of({tuple((n, p) for n, p in monomial if n not in values): coef})
            for name, power in monomial:
                for _ in range(power if name in values else 0):
                    term = term * values[name]
            for key, value in term.terms.items():
                terms[key] = terms[key] + value if key in terms else value
        return Polynomial._of(terms)

    # inspection --------------------------------------------------------------------------------
    def is_zero(self) -> bool:
        return not self.terms

    def names(self) -> frozenset[str]:
        """The names the polynomial reads."""
        if self._names is None:
            self._names = frozenset(name for monomial in self.terms for name, _ in monomial)
        return self._names

    def normalized(self) -> "Polynomial":
        """The polynomial divided by the magnitude of its first coefficient (in monomial order):
        equal for two polynomials that differ by a positive factor only (a learning rate)."""
        if not self.terms:
            return self
        first = abs(next(iter(self.terms.values())))
        return self if first == 1 else self.scaled(1 / first)

    def key(self) -> tuple:
        """A hashable canonical form: the sorted monomials with their coefficients."""
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Polynomial) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"Polynomial({self})"

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for monomial, coef in self.terms.items():
            factors = [name if power == 1 else f"{name}**{power}" for name, power in monomial]
            magnitude = abs(coef)
            if not factors:
                body = _number(magnitude)
            elif magnitude == 1:
                body = " * ".join(factors)
            else:
                body = " * ".join([_number(magnitude), *factors])
            parts.append(("- " if coef < 0 else "+ ") + body)
        text = " ".join(parts)
        return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    return repr(as_float) if Fraction(repr(as_float)) == value else f"({value.numerator}/{value.denominator})"


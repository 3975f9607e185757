"""Separable synapse expressions: a synapse expression as a sum of products of one-sided factors.

A term of a synapse update that is a product ``coef * f(post) * g(pre) * s`` (``s`` a synapse
variable) can be applied to a weight matrix without evaluating it per synapse: the factors are
computed once per unit, and their outer product is one matrix product or a row or column
scaling. :func:`expand` rewrites an expression over synapses as such a sum of
:class:`Monomial` terms; each backend then decides which sums it applies so (the numba backend's
shared-weight updates, :func:`~plasticity.backends.numba_plasticity.separable_terms`; the torch
backend's in-place updates and reductions, :mod:`plasticity.backends.torch_backend`).

Products, sums, negation, division by a one-sided value, integer powers 1 to 4 and (with
``split_where``) ``where`` with a one-sided condition expand; anything else that varies over both
sides (a function of a synapse variable, a comparison of synapses) does not. The expansion
equals the expression up to rounding wherever the values are finite. A split ``where`` is the
sum of its branches, each with its factors on the condition's side (and its scalars) moved
inside a ``where`` of the condition: ``where(c_pre, y_post / x_pre, 0)`` becomes
``y_post * where(c_pre, 1 / x_pre, 0)``, so a guard against a zero divisor on the condition's
side holds (an indicator times the branch made ``0 * inf``, NaN, where ``where`` gives the
other branch). A branch that is not finite on the other side where it is not chosen still
makes NaN: a generator that must keep every guard passes ``split_where=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

from plasticity.equations.tree import Binary, Call, Const, Name, Node, Unary

__all__ = ["Monomial", "expand", "side_of"]

_BOTH = frozenset({"pre", "post"})


@dataclass(frozen=True)
class Monomial:
    """``coef * product(factors) * product(synapse variables)``.

    Every factor varies over at most one side of the synapse (its domain is ``{"post"}``,
    ``{"pre"}`` or empty); ``synapses`` lists synapse variable names, repeated for powers.
    """

    coef: float
    factors: tuple[Node, ...]
    synapses: tuple[str, ...]

    def times(self, other: "Monomial") -> "Monomial":
        return Monomial(self.coef * other.coef, self.factors + other.factors, tuple(sorted(self.synapses + other.synapses)))

    def negated(self) -> "Monomial":
        return Monomial(-self.coef, self.factors, self.synapses)


def side_of(factors: tuple[Node, ...]) -> str:
    """``"post"``, ``"pre"``, ``"both"`` or ``"none"``: the synapse sides the factors vary over."""
    sides = frozenset().union(*(factor.domain for factor in factors)) if factors else frozenset()
    if sides >= _BOTH:
        return "both"
    return next(iter(sides)) if sides else "none"


def expand(node: Node, max_terms: int, *, split_where: bool = True) -> list[Monomial] | None:
    """``node`` as a sum of at most ``max_terms`` monomials (zero coefficients kept), or ``None``
    when it does not expand or needs more terms; ``split_where``: whether a ``where`` over both
    sides with a one-sided condition is split into its branches (see the module docstring)."""
    return _Expansion(max_terms, split_where).expand(node)


class _Expansion:
    def __init__(self, max_terms: int, split_where: bool):
        self.max_terms = max_terms
        self.split_where = split_where

    def expand(self, node: Node) -> list[Monomial] | None:
        # no term is ever dropped, so a sum has at least as many terms as any of its parts: the
        # limit is checked where terms multiply or add up
        if not node.domain >= _BOTH:
            if isinstance(node, Const):
                return [Monomial(node.value, (), ())]
            return [Monomial(1.0, (node,), ())]
        if isinstance(node, Name):
            return [Monomial(1.0, (), (node.var,))] if node.kind == "synapse" else None
        if isinstance(node, Unary):
            inner = self.expand(node.operand)
            return None if inner is None else [term.negated() for term in inner]
        if isinstance(node, Binary):
            return self.binary(node)
        if self.split_where and isinstance(node, Call) and node.func == "where" and not node.args[0].domain >= _BOTH:
            condition = node.args[0]
            when_true, when_false = self.expand(node.args[1]), self.expand(node.args[2])
            if when_true is None or when_false is None:
                return None
            return self.sum(_guarded(condition, True, when_true), _guarded(condition, False, when_false))
        return None

    def binary(self, node: Binary) -> list[Monomial] | None:
        if node.op == "/":
            if node.right.domain >= _BOTH:
                return None
            left = self.expand(node.left)
            reciprocal = Binary("/", Const(1.0), node.right, domain=node.right.domain)
            return None if left is None else self.product(left, [Monomial(1.0, (reciprocal,), ())])
        if node.op == "**":
            exponent = node.right
            if not (isinstance(exponent, Const) and float(exponent.value).is_integer() and 1 <= exponent.value <= 4):
                return None
            base = self.expand(node.left)
            result = base
            for _ in range(int(exponent.value) - 1):
                result = None if result is None else self.product(result, base)
            return result
        left, right = self.expand(node.left), self.expand(node.right)
        if left is None or right is None:
            return None
        if node.op == "+":
            return self.sum(left, right)
        if node.op == "-":
            return self.sum(left, [term.negated() for term in right])
        return self.product(left, right)

    def sum(self, left: list[Monomial], right: list[Monomial]) -> list[Monomial] | None:
        return left + right if len(left) + len(right) <= self.max_terms else None

    def product(self, left: list[Monomial], right: list[Monomial]) -> list[Monomial] | None:
        if len(left) * len(right) > self.max_terms:
            return None
        return [a.times(b) for a in left for b in right]


def _guarded(condition: Node, chosen: bool, terms: list[Monomial]) -> list[Monomial]:
    """``terms`` where ``condition`` is ``chosen`` and 0 elsewhere: each term's factors on the
    condition's side and its scalars multiplied inside ``where(condition, ..., 0)`` (or
    ``where(condition, 0, ...)``), so that the condition guards them (see the module docstring)."""
    guarded = []
    for term in terms:
        inside = [factor for factor in term.factors if factor.domain <= condition.domain]
        outside = tuple(factor for factor in term.factors if not factor.domain <= condition.domain)
        value: Node = Const(1.0)
        for factor in inside:
            value = factor if value == Const(1.0) else Binary("*", value, factor, domain=value.domain | factor.domain)
        branches = (value, Const(0.0)) if chosen else (Const(0.0), value)
        guard = Call("where", (condition, *branches), domain=condition.domain)
        guarded.append(Monomial(term.coef, (guard, *outside), term.synapses))
    return guarded

"""The typed expression tree that every backend generates code from.

A node knows its *domain*: the set of axes it varies over. In a population
equation the only axis is ``"unit"``; in a synapse equation the axes are
``"post"`` and ``"pre"`` (a synapse variable varies over both). Scalars
(constants, parameters, ``t``, ``dt``) have the empty domain. Every value also
varies over trials, which is implicit. Code generators use the domain to hoist
work out of inner loops; ``Rule.cost`` uses it to count work per synapse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from plasticity.equations.functions import FUNCTIONS

__all__ = [
    "Node",
    "Const",
    "Name",
    "Unary",
    "Binary",
    "Compare",
    "Call",
    "Reduce",
    "Equation",
    "ELEMENTWISE_FUNCTIONS",
    "POPULATION_REDUCTIONS",
    "SYNAPSE_REDUCTIONS",
    "walk",
]

#: Elementwise functions and their number of arguments (the table of
#: :mod:`plasticity.equations.functions`, which also holds each backend's implementation).
ELEMENTWISE_FUNCTIONS: dict[str, int] = {name: function.arity for name, function in FUNCTIONS.items()}

#: Reductions over the units of a population (population equations): they collapse "unit",
#: except softmax, which normalises over it.
POPULATION_REDUCTIONS = ("sum", "mean", "max", "min", "softmax")

#: Reductions inside a synapse equation: over post units at each pre unit, or over pre units at
#: each post unit. ``cumsum_post`` is the inclusive running sum over post units in index order
#: (Sanger's rule). All are evaluated with synapse values as they were before the equation.
#: The result varies over what the argument varies over, less the reduced side: ``sum_post(w *
#: y_post)`` is one value per pre unit, while ``sum_post(y_post)`` is one number per trial (the
#: sum over all post units), so ``theta_post -= sum_post(y_post)`` subtracts that sum from every
#: post unit whatever the sizes of the two sides.
SYNAPSE_REDUCTIONS = {"sum_post": "post", "cumsum_post": "post", "sum_pre": "pre"}


@dataclass(frozen=True)
class Node:
    """Base of every expression node. ``boolean`` marks comparison results."""

    domain: frozenset[str] = field(default=frozenset(), compare=False, repr=False, kw_only=True)
    boolean: bool = field(default=False, compare=False, repr=False, kw_only=True)

    def children(self) -> tuple["Node", ...]:
        return ()


@dataclass(frozen=True)
class Const(Node):
    value: float


@dataclass(frozen=True)
class Name(Node):
    """A name as written (``y_post``), its kind and the variable it refers to (``y``).

    Kinds: ``"param"``, ``"time"`` (``t``), ``"dt"``, ``"unit"`` (a population variable in a
    population equation), ``"pre"``, ``"post"`` (a pre or post unit variable in a synapse
    equation), ``"synapse"`` and ``"global"`` (a per-trial modulator).
    """

    name: str
    kind: str
    var: str


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-"
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "**"
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Node):
    op: str  # "<", "<=", ">", ">=", "==", "!="
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Call(Node):
    """An elementwise function from :data:`ELEMENTWISE_FUNCTIONS`."""

    func: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True)
class Reduce(Node):
    """A reduction: ``func`` over ``axis`` of ``arg`` (see the reduction tables above)."""

    func: str
    axis: str
    arg: Node

    def children(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True)
class Equation:
    """One parsed equation ``target op expr``; ``op`` is ``"="``, ``"+="``, ``"-="`` or ``"*="``.

    ``target`` is the name as written, ``var`` the variable it assigns and ``level`` where that
    variable lives: ``"unit"`` (population), ``"post"``/``"pre"`` (a rule variable per post or
    pre unit) or ``"synapse"``.
    """

    text: str
    target: str
    var: str
    level: str
    op: str
    expr: Node

    @property
    def domain(self) -> frozenset[str]:
        return {
            "unit": frozenset({"unit"}),
            "post": frozenset({"post"}),
            "pre": frozenset({"pre"}),
            "synapse": frozenset({"pre", "post"}),
        }[self.level]


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree under ``node``, parents before children."""
    yield node
    for child in node.children():
        yield from walk(child)

"""The equation language: parser and typed expression tree."""

from plasticity.equations.parser import PopulationContext, SynapseContext, parse_equations
from plasticity.equations.tree import (
    Binary,
    Call,
    Compare,
    Const,
    Equation,
    Name,
    Node,
    Reduce,
    Unary,
    walk,
)

__all__ = [
    "parse_equations",
    "PopulationContext",
    "SynapseContext",
    "Node",
    "Const",
    "Name",
    "Unary",
    "Binary",
    "Compare",
    "Call",
    "Reduce",
    "Equation",
    "walk",
]

"""Populations: groups of units with per-unit state and update equations."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from plasticity.equations import Equation, Name, PopulationContext, parse_equations, walk
from plasticity.errors import ConfigError, EquationError
from plasticity.params import Int, Real, check

__all__ = ["Population", "DEFAULT_STAGE", "MAX_UNITS"]

#: Most units of a population (its state is trials x n per variable).
MAX_UNITS = 1 << 24

#: The stage population equations given as a plain list run in.
DEFAULT_STAGE = "units"


class Population:
    """``n`` units whose state variables are updated by equations each step.

    Parameters
    ----------
    n:
        Number of units, at most :data:`MAX_UNITS`.
    equations:
        Update equations such as ``"y = tanh(I)"``, run in order; or a mapping from stage
        name to a list of equations when the network declares custom stages (predictive
        coding updates errors and values in separate stages).
    init:
        Initial values of variables by name (a number, an array of ``n`` values, or an
        initialiser from :mod:`plasticity.init`). A variable nothing assigns (an input set
        from outside, or a constant per unit) is declared here.
    params:
        Scalar parameters the equations read.
    name:
        The population's name in recordings; assigned by the network when omitted.

    State has shape ``(trials, n)``. Names an equation reads that are neither variables nor
    parameters must be summed inputs: targets of projections, reset every step.
    """

    def __init__(
        self,
        n: int,
        equations: Sequence[str] | Mapping[str, Sequence[str]] = (),
        init: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, float] | None = None,
        name: str | None = None,
    ):
        self.n = check("n", n, Int(1, MAX_UNITS))
        self.name = name
        self.params = {key: check(f"params.{key}", value, Real()) for key, value in dict(params or {}).items()}
        self.init = dict(init or {})
        if isinstance(equations, str):
            equations = [equations]
        groups = dict(equations) if isinstance(equations, Mapping) else {DEFAULT_STAGE: list(equations)}
        self.equation_texts = {stage: list(texts) for stage, texts in groups.items()}
        all_texts = [text for texts in groups.values() for text in texts]
        parsed = parse_equations(all_texts, PopulationContext(frozenset(self.params)))
        self.stages: dict[str, list[Equation]] = {}
        position = 0
        for stage, texts in groups.items():
            self.stages[stage] = parsed[position : position + len(texts)]
            position += len(texts)
        self.equations = parsed
        assigned = [eq.var for eq in parsed]
        for key in self.init:
            if key in self.params:
                raise ConfigError(f"population {self._label}: {key!r} is a parameter and cannot have an initial value")
        self.variables: list[str] = list(dict.fromkeys([*self.init, *assigned]))

    @property
    def _label(self) -> str:
        return repr(self.name) if self.name else "(unnamed)"

    def reads(self) -> dict[str, Equation]:
        """Names the equations read that are variables of this population, with a reading equation."""
        found: dict[str, Equation] = {}
        for equation in self.equations:
            for node in walk(equation.expr):
                if isinstance(node, Name) and node.kind == "unit":
                    found.setdefault(node.var, equation)
        return found

    def check_names(self, summed: set[str]) -> None:
        """Every name read is a variable, parameter or one of the ``summed`` inputs."""
        for var, equation in self.reads().items():
            if var not in self.variables and var not in summed:
                raise EquationError(
                    f"unknown variable {var!r} in population {self._label}; expected one of its variables "
                    f"({', '.join(self.variables) or 'none'}), parameters ({', '.join(self.params) or 'none'}), "
                    f"summed inputs from projections ({', '.join(sorted(summed)) or 'none'}), t or dt",
                    equation.text,
                    equation.text.find(var) + 1 if var in equation.text else None,
                )
        for equation in self.equations:
            if equation.var in summed:
                raise EquationError(
                    f"{equation.var!r} is a summed input of population {self._label} (a projection target) "
                    "and cannot be assigned",
                    equation.text,
                    1,
                )
        for var in summed & set(self.init):
            raise ConfigError(f"population {self._label}: summed input {var!r} cannot have an initial value")

    def __repr__(self) -> str:
        return f"Population(n={self.n}, name={self.name!r}, variables={self.variables})"

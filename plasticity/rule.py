"""Learning rules: a few synapse equations with parameters, defaults and a reference.

A rule's equations assign synapse variables (``w``, or a trace such as ``e``),
or rule variables that live on one side of the projection (``theta_post``: one
value per post unit, ``a_pre``: one per pre unit). They read unit variables of
the populations through the ``_pre``/``_post`` suffixes.

``form="strict"`` marks a 3Q-style rule: exactly three equations using only
``+``, ``-`` and ``*`` over local quantities. ``form="relaxed"`` also allows
elementwise functions. Both are checked when the rule is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from plasticity.equations import (
    Binary,
    Call,
    Compare,
    Equation,
    Name,
    Node,
    Reduce,
    SynapseContext,
    Unary,
    parse_equations,
    walk,
)
from plasticity.equations.tree import SYNAPSE_REDUCTIONS
from plasticity.errors import ConfigError, EquationError
from plasticity.params import Real

__all__ = ["Rule", "RuleCost", "FORMS"]

#: Valid values of ``Rule(form=...)``.
FORMS = ("free", "strict", "relaxed")

_SYNAPSE = frozenset({"pre", "post"})


@dataclass(frozen=True)
class RuleCost:
    """Work of a rule per synapse per step.

    ``adds`` counts additions and subtractions, ``multiplies`` multiplications,
    ``divides``, ``functions`` (elementwise function calls), ``comparisons``;
    only operations whose result varies over both pre and post units count,
    since everything else is computed once per unit and reused across a row.
    ``reads`` and ``writes`` count synapse variables loaded and stored per
    synapse. ``unit_operations`` counts the remaining operations, done once per
    pre or post unit.
    """

    adds: int
    multiplies: int
    divides: int
    functions: int
    comparisons: int
    reads: int
    writes: int
    unit_operations: int = 0

    def bytes_per_synapse(self, itemsize: int = 4) -> int:
        """Memory traffic per synapse per step for synapse state of ``itemsize`` bytes."""
        return (self.reads + self.writes) * itemsize

    def as_dict(self) -> dict[str, int]:
        return {
            "adds": self.adds,
            "multiplies": self.multiplies,
            "divides": self.divides,
            "functions": self.functions,
            "comparisons": self.comparisons,
            "reads": self.reads,
            "writes": self.writes,
            "unit_operations": self.unit_operations,
        }


@dataclass(frozen=True)
class Rule:
    """A local learning rule.

    Parameters
    ----------
    equations:
        Synapse equations, e.g. ``["w += eta * y_post * (x_pre - y_post * w)"]``.
    params:
        Parameter names and default values; a projection may override them.
    modulators:
        Names of global (per-trial) signals set from outside, e.g. a reward.
    init:
        Initial values of rule variables other than ``w`` (``{"theta_post": 1.0}``).
    form:
        ``"free"`` (default), ``"strict"`` (3Q-style) or ``"relaxed"``.
    name, reference, description:
        Shown by ``plasticity rules``.
    """

    equations: tuple[str, ...]
    params: Mapping[str, float] = field(default_factory=dict)
    modulators: tuple[str, ...] = ()
    init: Mapping[str, float] = field(default_factory=dict)
    form: str = "free"
    name: str = ""
    reference: str = ""
    description: str = ""
    parsed: tuple[Equation, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        equations = (self.equations,) if isinstance(self.equations, str) else tuple(self.equations)
        object.__setattr__(self, "equations", equations)
        number = Real()
        object.__setattr__(self, "params", {k: number(f"rule parameter {k!r}", v) for k, v in dict(self.params).items()})
        object.__setattr__(self, "modulators", tuple(self.modulators))
        object.__setattr__(self, "init", dict(self.init))
        if self.form not in FORMS:
            raise ConfigError(f"form must be one of {', '.join(map(repr, FORMS))}, got {self.form!r}")
        if not equations:
            raise EquationError("a rule needs at least one equation")
        clash = set(self.params) & set(self.modulators)
        if clash:
            raise EquationError(f"{', '.join(sorted(clash))} cannot be both a parameter and a modulator")
        context = SynapseContext(frozenset(self.params), frozenset(self.modulators))
        parsed = tuple(parse_equations(equations, context))
        object.__setattr__(self, "parsed", parsed)
        for equation in parsed:
            _check_reductions(equation)
        if self.form != "free":
            _check_three_q(parsed, self.form)
        unknown_init = set(self.init) - set(self.variables())
        if unknown_init:
            raise EquationError(
                f"init names {', '.join(sorted(unknown_init))}, which no equation of the rule assigns; "
                f"rule variables: {', '.join(self.variables())}"
            )

    def variables(self) -> list[str]:
        """Names of the variables the rule owns, as written (``w``, ``theta_post``)."""
        names = ["w"]
        for equation in self.parsed:
            if equation.target not in names:
                names.append(equation.target)
        return names

    def unit_reads(self, side: str) -> set[str]:
        """Variables read from the ``side`` ("pre" or "post") population (not owned by the rule)."""
        owned = {eq.var for eq in self.parsed if eq.level == side}
        return {
            node.var
            for eq in self.parsed
            for node in walk(eq.expr)
            if isinstance(node, Name) and node.kind == side and node.var not in owned
        }

    def with_params(self, **overrides: float) -> "Rule":
        """A copy with some parameter defaults changed; unknown names are errors."""
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise ConfigError(
                f"rule {self.name or '(unnamed)'} has no parameter {', '.join(map(repr, sorted(unknown)))}; "
                f"valid parameters: {', '.join(sorted(self.params)) or '(none)'}"
            )
        return Rule(
            self.equations, {**self.params, **overrides}, self.modulators, self.init, self.form,
            self.name, self.reference, self.description,
        )

    def update_key(self) -> tuple:
        """What determines the rule's update (equations, parameters, modulators, initial values, form),
        without its name and documentation: two rules with equal keys change weights the same way."""
        return (self.equations, tuple(sorted(self.params.items())), self.modulators,
                tuple(sorted(self.init.items())), self.form)

    def as_table(self) -> dict[str, Any]:
        """The rule as the table of equations a TOML file gives (``Rule(**table)`` rebuilds it)."""
        table: dict[str, Any] = {"equations": list(self.equations)}
        for key in ("params", "modulators", "init"):
            if getattr(self, key):
                table[key] = dict(getattr(self, key)) if key != "modulators" else list(self.modulators)
        for key in ("form", "name", "reference", "description"):
            if getattr(self, key) != ("free" if key == "form" else ""):
                table[key] = getattr(self, key)
        return table

    def cost(self) -> RuleCost:
        """Operations, reads and writes per synapse per step (see :class:`RuleCost`)."""
        counts = {"adds": 0, "multiplies": 0, "divides": 0, "functions": 0, "comparisons": 0}
        unit_operations = 0
        reads: set[str] = set()
        writes: set[str] = set()
        for equation in self.parsed:
            for node in walk(equation.expr):
                kind = _operation_kind(node)
                if kind is None:
                    if isinstance(node, Name) and node.kind == "synapse":
                        reads.add(node.var)
                    continue
                if node.domain >= _SYNAPSE or (isinstance(node, Reduce) and node.arg.domain >= _SYNAPSE):
                    counts[kind] += 1
                else:
                    unit_operations += 1
            if equation.level == "synapse":
                writes.add(equation.var)
                if equation.op != "=":
                    reads.add(equation.var)
                    counts["multiplies" if equation.op == "*=" else "adds"] += 1
            elif equation.op != "=":
                unit_operations += 1
        return RuleCost(**counts, reads=len(reads), writes=len(writes), unit_operations=unit_operations)

    def describe(self) -> str:
        """Equations, parameters and defaults, reference and cost, as text."""
        cost = self.cost()
        lines = [f"{self.name or '(unnamed rule)'}" + (f" [{self.form}]" if self.form != "free" else "")]
        if self.description:
            lines.append(f"  {self.description}")
        lines.append("  equations:")
        lines += [f"    {text}" for text in self.equations]
        if self.params:
            lines.append("  parameters: " + ", ".join(f"{k} = {v:g}" for k, v in self.params.items()))
        if self.modulators:
            lines.append("  modulators: " + ", ".join(self.modulators))
        if self.init:
            lines.append("  initial values: " + ", ".join(f"{k} = {v:g}" for k, v in self.init.items()))
        counts = [_counted(cost.adds, "add"), _counted(cost.multiplies, "multiply", "multiplies")]
        counts += [_counted(n, kind) for n, kind in
                   ((cost.divides, "divide"), (cost.functions, "function"), (cost.comparisons, "comparison")) if n]
        counts += [_counted(cost.reads, "read"), _counted(cost.writes, "write")]
        lines.append("  cost per synapse per step: " + ", ".join(counts))
        if self.reference:
            lines.append(f"  reference: {self.reference}")
        return "\n".join(lines)


def _counted(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _operation_kind(node: Node) -> str | None:
    if isinstance(node, Binary):
        return {"+": "adds", "-": "adds", "*": "multiplies", "/": "divides", "**": "functions"}[node.op]
    if isinstance(node, Unary):
        return "adds"
    if isinstance(node, Compare):
        return "comparisons"
    if isinstance(node, Call):
        return "functions"
    if isinstance(node, Reduce):
        return "adds"
    return None


def _check_reductions(equation: Equation) -> None:
    for node in walk(equation.expr):
        if isinstance(node, Reduce) and node.func in SYNAPSE_REDUCTIONS:
            for inner in walk(node.arg):
                if isinstance(inner, Reduce):
                    raise EquationError(
                        f"{inner.func}() inside {node.func}(): synapse reductions cannot be nested",
                        equation.text,
                    )
            if node.func == "cumsum_post" and equation.level != "synapse":
                raise EquationError("cumsum_post() can only be used in an equation for a synapse variable", equation.text)


def _check_three_q(equations: Sequence[Equation], form: str) -> None:
    if len(equations) != 3:
        raise EquationError(
            f"a {form} 3Q-style rule has exactly three equations, got {len(equations)}"
        )
    for index, equation in enumerate(equations, start=1):
        for node in walk(equation.expr):
            problem = _three_q_violation(node, form)
            if problem:
                raise EquationError(f"equation {index} of a {form} 3Q-style rule {problem}", equation.text)


def _three_q_violation(node: Node, form: str) -> str | None:
    allowed = "only +, -, *" + (" and elementwise functions" if form == "relaxed" else "")
    if isinstance(node, Binary) and node.op not in ("+", "-", "*"):
        name = "division" if node.op == "/" else "a power (write x * x)"
        return f"uses {name}; {allowed} are allowed"
    if isinstance(node, Reduce):
        return f"uses the reduction {node.func}(), which is not local to a synapse; {allowed} over local quantities are allowed"
    if isinstance(node, Call) and form == "strict":
        return f"uses the function {node.func}(); {allowed} are allowed"
    if isinstance(node, Compare):
        return f"uses a comparison; {allowed} are allowed"
    return None

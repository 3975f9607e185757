"""Networks: populations and projections in a declared step order.

A step runs these stages in order (the same on every backend):

1. inputs: variables given as inputs are set for this step;
2. ``"drive"``: every summed input is reset to zero, then each projection adds
   ``W @ pre.source`` to ``post.target`` (and its transposed feedback, unless the
   network has a separate ``"feedback"`` stage);
3. ``"units"``: each population's equations, populations in network order,
   equations in the order written;
4. ``"plasticity"``: each projection's rule, in network order.

Custom stages (``stages=("drive", "errors", "feedback", "values", "plasticity")``)
let populations split their equations by stage name, as predictive coding needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from plasticity.errors import ConfigError
from plasticity.population import DEFAULT_STAGE, Population
from plasticity.projection import Projection

__all__ = ["Network", "Operation", "DEFAULT_STAGES", "fusion_mode"]

DEFAULT_STAGES = ("drive", DEFAULT_STAGE, "plasticity")
_BUILTIN_STAGES = ("drive", "feedback", "plasticity")


@dataclass(frozen=True)
class Operation:
    """One entry of the step program.

    ``kind`` is ``"reset"`` (zero summed inputs ``targets``), ``"drive"`` or ``"feedback"``
    (of ``projection``), ``"units"`` (equations of ``population`` in ``stage``) or
    ``"plasticity"`` (of ``projection``); ``stage`` is the network stage it belongs to (a run
    may run a subset of stages).
    """

    kind: str
    population: str | None = None
    projection: str | None = None
    stage: str | None = None
    targets: tuple[tuple[str, str], ...] = ()


class Network:
    """Populations and projections, validated together, with a step program.

    Names come from the objects' ``name`` or, when omitted, ``pop0, pop1, ...`` and
    ``proj0, proj1, ...`` in the order given.
    """

    def __init__(
        self,
        populations: Sequence[Population],
        projections: Sequence[Projection] = (),
        *,
        stages: Sequence[str] = DEFAULT_STAGES,
    ):
        self.populations: dict[str, Population] = {}
        for index, population in enumerate(populations):
            if not isinstance(population, Population):
                raise ConfigError(f"populations[{index}] is a {type(population).__name__}, not a Population")
            if population.name is None:
                population.name = f"pop{index}"
            self._check_name(population.name, "population")
            if population.name in self.populations:
                raise ConfigError(f"two populations are named {population.name!r}")
            self.populations[population.name] = population
        self.projections: dict[str, Projection] = {}
        for index, projection in enumerate(projections):
            if not isinstance(projection, Projection):
                raise ConfigError(f"projections[{index}] is a {type(projection).__name__}, not a Projection")
            if projection.name is None:
                projection.name = f"proj{index}"
            self._check_name(projection.name, "projection")
            if projection.name in self.projections or projection.name in self.populations:
                raise ConfigError(f"the name {projection.name!r} is used twice")
            for side in (projection.pre, projection.post):
                if self.populations.get(side.name) is not side:
                    raise ConfigError(
                        f"projection {projection.name!r} connects population {side.name!r}, which is not in the network"
                    )
            self.projections[projection.name] = projection
        self.stages = tuple(stages)
        self._check_stages()
        self.summed = self._summed_inputs()
        for population in self.populations.values():
            population.check_names(self.summed[population.name])
        self.program = self._program()

    @staticmethod
    def _check_name(name: str, what: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{what} name must be an identifier, got {name!r}")

    def _check_stages(self) -> None:
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"stages must be distinct, got {self.stages}")
        for required in ("drive", "plasticity"):
            if required not in self.stages:
                raise ConfigError(f"stages must include {required!r}, got {self.stages}")
        for population in self.populations.values():
            for stage, equations in population.stages.items():
                if equations and (stage not in self.stages or stage in _BUILTIN_STAGES):
                    unit_stages = [s for s in self.stages if s not in _BUILTIN_STAGES]
                    raise ConfigError(
                        f"population {population.name!r} has equations for stage {stage!r}; the network's "
                        f"unit stages are {', '.join(map(repr, unit_stages)) or 'none'}"
                    )

    def _summed_inputs(self) -> dict[str, set[str]]:
        summed: dict[str, set[str]] = {name: set() for name in self.populations}
        for projection in self.projections.values():
            summed[projection.post.name].add(projection.target)
            if projection.feedback is not None:
                summed[projection.pre.name].add(projection.feedback[1])
        for name, targets in summed.items():
            population = self.populations[name]
            for target in targets:
                if target in population.params:
                    raise ConfigError(f"summed input {target!r} of population {name!r} is also a parameter")
        if "feedback" in self.stages:
            forward = {(p.post.name, p.target) for p in self.projections.values()}
            backward = {(p.pre.name, p.feedback[1]) for p in self.projections.values() if p.feedback}
            both = forward & backward
            if both:
                pop, var = sorted(both)[0]
                raise ConfigError(
                    f"summed input {pop}.{var} receives both forward drive and feedback, which run in different stages"
                )
        return summed

    def _program(self) -> tuple[Operation, ...]:
        program: list[Operation] = []
        separate_feedback = "feedback" in self.stages
        for stage in self.stages:
            if stage == "drive":
                targets = {(p.post.name, p.target) for p in self.projections.values()}
                if not separate_feedback:
                    targets |= {(p.pre.name, p.feedback[1]) for p in self.projections.values() if p.feedback}
                program.append(Operation("reset", stage=stage, targets=tuple(sorted(targets))))
                for projection in self.projections.values():
                    program.append(Operation("drive", projection=projection.name, stage=stage))
                    if projection.feedback and not separate_feedback:
                        program.append(Operation("feedback", projection=projection.name, stage=stage))
            elif stage == "feedback":
                targets = {(p.pre.name, p.feedback[1]) for p in self.projections.values() if p.feedback}
                program.append(Operation("reset", stage=stage, targets=tuple(sorted(targets))))
                for projection in self.projections.values():
                    if projection.feedback:
                        program.append(Operation("feedback", projection=projection.name, stage=stage))
            elif stage == "plasticity":
                for projection in self.projections.values():
                    if projection.rule is not None:
                        program.append(Operation("plasticity", projection=projection.name, stage=stage))
            else:
                for population in self.populations.values():
                    if population.stages.get(stage):
                        program.append(Operation("units", population=population.name, stage=stage))
        return tuple(program)

    def variables(self) -> dict[str, str]:
        """Every recordable variable, ``"owner.var"``, mapped to ``"unit"``, ``"summed"`` or the projection level."""
        names: dict[str, str] = {}
        for population in self.populations.values():
            for var in population.variables:
                names[f"{population.name}.{var}"] = "unit"
            for var in sorted(self.summed[population.name]):
                names[f"{population.name}.{var}"] = "summed"
        for projection in self.projections.values():
            for var in projection.variables:
                level = "post" if var.endswith("_post") else "pre" if var.endswith("_pre") else "synapse"
                names[f"{projection.name}.{var}"] = level
        return names

    def equations(self) -> dict[str, list[str]]:
        """Every equation of the network, keyed by population or projection name."""
        table: dict[str, list[str]] = {}
        for population in self.populations.values():
            table[population.name] = [eq.text for eq in population.equations]
        for projection in self.projections.values():
            table[projection.name] = list(projection.rule.equations) if projection.rule else []
        return table

    def config(self) -> dict:
        """A JSON-able description of the network (for provenance)."""
        return {
            "stages": list(self.stages),
            "populations": {
                name: {"n": p.n, "equations": p.equation_texts, "params": p.params}
                for name, p in self.populations.items()
            },
            "projections": {
                name: {
                    "pre": p.pre.name,
                    "post": p.post.name,
                    "rule": p.rule.name if p.rule else None,
                    "equations": list(p.rule.equations) if p.rule else [],
                    "params": dict(p.rule.params) if p.rule else {},
                    "source": p.source,
                    "target": p.target,
                    "feedback": list(p.feedback) if p.feedback else None,
                    "shared": p.shared,
                    "masked": p.mask is not None,
                }
                for name, p in self.projections.items()
            },
        }


def fusion_mode(network: Network, name: str) -> bool | None:
    """Whether projection ``name``'s plasticity may precompute its next drive (a backend's fused
    pass: the update also sums the new weights times the source as the next drive will see it).

    ``None``: no (a unit stage runs between them, or there is no rule); ``True``: the
    drive it feeds is the next step's; ``False``: a later drive of the same step.
    """
    projection = network.projections[name]
    if projection.rule is None or projection.shared:
        return None
    program = network.program
    plasticity = next(k for k, op in enumerate(program) if op.kind == "plasticity" and op.projection == name)
    drive = next(k for k, op in enumerate(program) if op.kind == "drive" and op.projection == name)
    wraps = plasticity > drive
    between = program[plasticity + 1 :] + program[:drive] if wraps else program[plasticity + 1 : drive]
    if any(op.kind == "units" for op in between):
        return None
    return wraps

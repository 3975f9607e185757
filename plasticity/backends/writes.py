"""Which state arrays each operation of a step program writes (for backends that reuse results).

A backend counts writes per state key and reuses a product (a projection's drive) while
none of the arrays it reads were written since it was computed.
"""

from __future__ import annotations

from typing import Iterable

from plasticity.network import Network

__all__ = ["written_keys"]


def written_keys(network: Network, state_keys: Iterable[str]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """The state keys each operation writes, keyed by ``("units", population, stage)`` (the variables
    its equations assign), ``("drive", projection)`` and ``("feedback", projection)`` (their summed
    targets) and ``("plasticity", projection)`` (every state variable of the projection)."""
    keys = list(state_keys)
    found: dict[tuple[str, ...], tuple[str, ...]] = {}
    for name, population in network.populations.items():
        for stage, equations in population.stages.items():
            found[("units", name, stage)] = tuple(dict.fromkeys(f"{name}.{eq.var}" for eq in equations))
    for name, projection in network.projections.items():
        found[("drive", name)] = (f"{projection.post.name}.{projection.target}",)
        if projection.feedback is not None:
            found[("feedback", name)] = (f"{projection.pre.name}.{projection.feedback[1]}",)
        found[("plasticity", name)] = tuple(key for key in keys if key.split(".", 1)[0] == name and not key.endswith(".__mask__"))
    return found

"""The layout of a simulation's state: one array per variable, keyed ``"owner.var"``.

Every backend holds the same arrays with the same shapes:

* population variables and summed inputs: ``(trials, n)``;
* synapse variables: ``(trials, post, pre)``, or ``(post, pre)`` for shared weights;
* rule variables per post or pre unit (``theta_post``): ``(trials, post)`` or ``(trials, pre)``;
* modulators of a rule: ``(trials,)``.
"""

from __future__ import annotations

import numpy as np

from plasticity.init import resolve_initial
from plasticity.network import Network

__all__ = ["state_shapes", "initial_state", "modulator_keys"]


def modulator_keys(network: Network) -> list[str]:
    """Keys of every rule modulator, ``"projection.modulator"``."""
    return [
        f"{name}.{mod}"
        for name, projection in network.projections.items()
        if projection.rule is not None
        for mod in projection.rule.modulators
    ]


def state_shapes(network: Network, trials: int) -> dict[str, tuple[int, ...]]:
    """Every state array's key and shape, in network order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, population in network.populations.items():
        for var in [*population.variables, *sorted(network.summed[name])]:
            shapes[f"{name}.{var}"] = (trials, population.n)
    for name, projection in network.projections.items():
        for var in projection.variables:
            shapes[f"{name}.{var}"] = projection.variable_shape(var, trials)
    for key in modulator_keys(network):
        shapes[key] = (trials,)
    return shapes


def initial_state(network: Network, trials: int, rng: np.random.Generator, dtype: str = "float64") -> dict[str, np.ndarray]:
    """Initial values of every state array in ``dtype``, drawn in network order from ``rng`` (the same
    values, rounded to ``dtype``, whatever the dtype: the draws are float64)."""
    state = {}
    for key, shape in state_shapes(network, trials).items():
        owner, var = key.split(".", 1)
        if owner in network.populations:
            value = network.populations[owner].init.get(var, 0.0)
        else:
            value = network.projections[owner].init.get(var, 0.0)
        state[key] = resolve_initial(value, shape, rng, key, dtype)
        projection = network.projections.get(owner)
        if projection is not None and projection.mask is not None and var in projection.synapse_variables:
            state[key] *= projection.mask
    return state

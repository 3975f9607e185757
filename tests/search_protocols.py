"""A protocol for the rule-search tests: the search's association task run on the engine.

It draws the same data as the fast task ``association`` (plasticity.search.tasks) and runs the
rule through ``plasticity.Simulation``, so a search over this protocol must score every
candidate as the generic kernel does.
"""

from typing import Annotated

import numpy as np
import xarray as xr

import plasticity as pl
from plasticity.params import Int, RuleSpec
from plasticity.search.tasks import association as draw


def association(
    *,
    rule: Annotated[object, RuleSpec()] = "delta",
    n: Annotated[int, Int(1, 64)] = 8,
    m: Annotated[int, Int(1, 64)] = 4,
    steps: Annotated[int, Int(1, 10_000)] = 300,
    trials: Annotated[int, Int(1, 16)] = 3,
    backend="numpy",
    seed=0,
    dtype="float64",
    device=None,
) -> xr.Dataset:
    problem = draw(n=n, m=m, steps=steps, trials=trials, seed=seed)
    data = problem.data
    inputs = pl.Population(n, init={"x": 0.0}, name="input")
    outputs = pl.Population(m, ["y = I", "e = target - y"], init={"target": 0.0}, name="output")
    network = pl.Network([inputs, outputs], [pl.Projection(inputs, outputs, rule, source="x", init={"w": data.w0}, name="w")])
    simulation = pl.Simulation(network, trials=trials, backend=backend, dtype=dtype, device=device, seed=0)
    rows = np.arange(trials)[None, :]
    simulation.run(steps, inputs={"input.x": data.patterns[rows, data.order.T], "output.target": data.targets[rows, data.order.T]})
    weights = simulation.get("w.w")
    return xr.Dataset({"score": ("trial", problem.score(weights)), "capacity": ("trial", problem.capacity(weights))})


def failing(*, rule: Annotated[object, RuleSpec()] = "delta", backend="numpy", seed=0, dtype="float64", device=None) -> xr.Dataset:
    """Runs the search's check of the grammar (a rule with eta = 0) and fails for every candidate,
    as a protocol that crashes would."""
    if rule.params.get("eta", 0.0) > 0:
        raise RuntimeError("this protocol fails for every candidate")
    return xr.Dataset({"score": ("trial", np.zeros(2))})

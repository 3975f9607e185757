"""Cost accounting: operations and bytes per synapse per step, as xarray."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import xarray as xr

from plasticity.rule import Rule

__all__ = ["rule_costs"]

_QUANTITIES = ("adds", "multiplies", "divides", "functions", "comparisons", "reads", "writes")


def rule_costs(rules: Iterable[Rule] | None = None, *, itemsize: int = 4, include_drive: bool = True) -> xr.Dataset:
    """Work per synapse per step of each rule (default: every built-in rule).

    Returns a Dataset with ``operations(rule, operation)`` and ``bytes(rule)``. With
    ``include_drive`` the projection's drive ``W @ x`` (one multiply and one add per
    synapse, reading ``w`` once more unless the backend fuses it with the update) is added,
    which is what one simulated step of a plastic projection costs.
    """
    if rules is None:
        from plasticity.rules import list_rules

        rules = list_rules().values()
    rules = list(rules)
    counts = np.array([[getattr(rule.cost(), q) for q in _QUANTITIES] for rule in rules], dtype=np.int64)
    if include_drive:
        counts[:, _QUANTITIES.index("adds")] += 1
        counts[:, _QUANTITIES.index("multiplies")] += 1
    memory = np.array([rule.cost().bytes_per_synapse(itemsize) for rule in rules], dtype=np.int64)
    return xr.Dataset(
        {
            "operations": (("rule", "operation"), counts, {"long_name": "operations per synapse per step"}),
            "bytes": (("rule",), memory, {"long_name": "synapse state moved per synapse per step", "units": "bytes"}),
        },
        coords={"rule": [rule.name or f"rule{i}" for i, rule in enumerate(rules)], "operation": list(_QUANTITIES)},
        attrs={"itemsize": itemsize, "include_drive": int(include_drive)},
    )

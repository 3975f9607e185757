"""Analysis tools over xarray objects: alignment, capacity, overlaps, energies, cost."""

from plasticity.analysis.alignment import alignment, target_alignment
from plasticity.analysis.cost import rule_costs
from plasticity.analysis.capacity import critical_load, finite_size, success_curve
from plasticity.analysis.overlaps import basin_size, energy_trajectory, overlap_trajectory
from plasticity.analysis.energy import decreases_monotonically, energy_increases, first_violation, pc_energy
from plasticity.analysis.learning import cover_curve, cover_probability, learning_cost, time_to_criterion
from plasticity.analysis.stability import ExpectedUpdate, fixed_point, stability
from plasticity.analysis.dynamics import boundedness, growth_rate, regime

__all__ = [
    "alignment",
    "target_alignment",
    "success_curve",
    "critical_load",
    "finite_size",
    "overlap_trajectory",
    "energy_trajectory",
    "basin_size",
    "rule_costs",
    "pc_energy",
    "energy_increases",
    "decreases_monotonically",
    "cover_probability",
    "cover_curve",
    "learning_cost",
    "time_to_criterion",
    "ExpectedUpdate",
    "fixed_point",
    "stability",
    "regime",
    "growth_rate",
    "boundedness",
    "first_violation",
]

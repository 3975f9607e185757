"""Analysis tools over xarray objects: alignment, capacity, overlaps, energies, cost."""

from plasticity.analysis.alignment import alignment

__all__ = ["alignment"]

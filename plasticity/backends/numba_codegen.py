"""Generate the numba kernels of a network: one module of source text per network.

Each population stage and each projection's plasticity becomes one ``@numba.njit`` function
written as Python source text from the equations' trees (never a copy per rule); what they
compute is defined by :mod:`plasticity.backends.numpy_backend`, here is only how. The work is
split by file:

* :mod:`~plasticity.backends.numba_source`: source lines, expressions and decorators every
  kernel is written with;
* :mod:`~plasticity.backends.numba_units`: population kernels (a stage's equations in one loop
  over the units);
* :mod:`~plasticity.backends.numba_plasticity`: plasticity kernels (a rule's equations, one pass
  over the weights each, the separable updates of shared weights as BLAS products);
* :mod:`~plasticity.backends.numba_cache`: the disk cache that writes a module's text to a file
  named by its hash, checks it and imports it (numba keeps the machine code beside it);
* this module: :func:`generate`, the text of a whole network's module.

The compiled step programs of :mod:`plasticity.backends.numba_program` call these kernels (and
fuse population stages) from one generated function.
"""

from __future__ import annotations

from dataclasses import dataclass

from plasticity.backends.numba_cache import cache_dir, load_module
from plasticity.backends.numba_plasticity import COLUMN_CHUNK, SeparableUpdate, plasticity_kernel, separable_terms
from plasticity.backends.numba_source import FASTMATH, PARALLEL_MIN_ELEMENTS, TANH32, KernelSpec
from plasticity.backends.numba_units import population_kernel
from plasticity.network import Network

__all__ = [
    "FASTMATH",
    "PARALLEL_MIN_ELEMENTS",
    "COLUMN_CHUNK",
    "cache_dir",
    "load_module",
    "NetworkSource",
    "generate",
    "separable_terms",
    "SeparableUpdate",
]


@dataclass
class NetworkSource:
    """The generated module text and the kernels it defines."""

    text: str
    units: dict[tuple[str, str], KernelSpec]
    plasticity: dict[str, KernelSpec]


def generate(network: Network, trials: int, dtype: str) -> NetworkSource:
    """Source text of every kernel of ``network`` for ``trials`` trials in ``dtype``."""
    scalar = f"np.{dtype}"
    header = ["import numba", "import numpy as np", "", "from plasticity.backends.blas import gemm, threads", "", "", TANH32, ""]
    pieces = []
    units: dict[tuple[str, str], KernelSpec] = {}
    for name, population in network.populations.items():
        for stage, equations in population.stages.items():
            if not equations:
                continue
            function = f"units_{len(units)}"
            spec, text = population_kernel(network, name, stage, equations, function, trials, scalar)
            units[(name, stage)] = spec
            pieces.append(text)
    plasticity: dict[str, KernelSpec] = {}
    for name, projection in network.projections.items():
        if projection.rule is None:
            continue
        spec, text = plasticity_kernel(network, name, f"plasticity_{len(plasticity)}", trials, scalar)
        plasticity[name] = spec
        pieces.append(text)
    return NetworkSource("\n".join(header) + "\n\n".join(p for p in pieces if p), units, plasticity)

"""plasticity: a simulator for biologically plausible learning rules.

Write a local learning rule as a few equations, run it over neuron populations
on the numba (default), numpy or torch backend, and get the run back as an
``xarray.Dataset`` with provenance.
"""

__version__ = "0.1.0"

from plasticity._threads import apply_openblas_default, apply_thread_defaults

apply_thread_defaults()  # before numba, torch or a BLAS loads an OpenMP runtime, which reads them once
apply_openblas_default()  # before numpy or scipy loads OpenBLAS, or its loaded pools re-read it

from plasticity.errors import BackendError, ConfigError, DivergenceError, EquationError, PlasticityError
from plasticity.protocols import get_protocol, list_protocols, protocol, run_protocol
from plasticity.rule import Rule, RuleCost
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.network import Network
from plasticity.simulation import Simulation
from plasticity import init

__all__ = [
    "__version__",
    "PlasticityError",
    "EquationError",
    "ConfigError",
    "DivergenceError",
    "BackendError",
    "Rule",
    "RuleCost",
    "Population",
    "Projection",
    "Network",
    "Simulation",
    "init",
    "protocol",
    "get_protocol",
    "list_protocols",
    "run_protocol",
]

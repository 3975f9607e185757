"""Principal component analysis with Hebbian rules: the ``pca`` protocol.

Inputs are drawn from a zero-mean Gaussian whose covariance has a known spectrum
(eigenvalues ``1, decay, decay**2, ...`` along a random orthonormal basis). ``k`` linear
outputs ``y = W x`` learn with Oja's rule (Oja 1982; every output converges to the first
principal component) or Sanger's generalised Hebbian algorithm (Sanger 1989; output ``i``
converges to component ``i``). The protocol records how well output ``i`` aligns with
principal component ``i`` as learning proceeds.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import xarray as xr

from plasticity.analysis.alignment import alignment
from plasticity.errors import ConfigError
from plasticity.network import Network
from plasticity.params import Choice, Int, Real
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rules import get_rule
from plasticity.simulation import Simulation

__all__ = ["pca", "pca_network", "covariance_with_spectrum", "PCA_RULES"]

#: Rules the protocol accepts.
PCA_RULES = ("oja", "sanger")
#: Upper bounds of the protocol's sizes: the covariance basis is an n x n QR decomposition.
MAX_INPUTS = 4096
MAX_STEPS = 10_000_000
MAX_TRIALS = 10_000


def covariance_with_spectrum(n: int, decay: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``decay**i`` and a random orthonormal basis (rows are the components)."""
    eigenvalues = decay ** np.arange(n, dtype=np.float64)
    basis, upper = np.linalg.qr(rng.standard_normal((n, n)))
    basis = basis * np.sign(np.diag(upper))
    return eigenvalues, basis.T


def pca_network(n: int, k: int, rule: str, eta: float) -> Network:
    """``n`` inputs ``x`` projecting to ``k`` linear outputs ``y = I`` through a plastic projection."""
    inputs = Population(n, init={"x": 0.0}, name="input")
    outputs = Population(k, ["y = I"], name="output")
    weights = Projection(inputs, outputs, rule, params={"eta": eta}, source="x", name="weights")
    return Network([inputs, outputs], [weights])


@protocol("pca")
def pca(
    *,
    n: Annotated[int, Int(1, MAX_INPUTS)] = 16,
    k: Annotated[int, Int(1, MAX_INPUTS)] = 1,
    rule: Annotated[str, Choice(*PCA_RULES)] = "oja",
    eta: Annotated[float, Real(0, 1, low_open=True)] = 0.003,
    decay: Annotated[float, Real(0, 1, low_open=True, high_open=True)] = 0.5,
    steps: Annotated[int, Int(1, MAX_STEPS)] = 12000,
    trials: Annotated[int, Int(1, MAX_TRIALS)] = 4,
    record_every: Annotated[int, Int(1, MAX_STEPS)] = 50,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Learn the top ``k`` principal components of Gaussian inputs with Oja's or Sanger's rule.

    Parameters: ``n`` inputs, ``k`` outputs (at most ``n``), ``rule`` ("oja" | "sanger"),
    learning rate ``eta``, eigenvalue ratio ``decay`` in (0, 1), ``steps`` input samples,
    ``trials`` independent networks, ``record_every`` steps between recordings.

    Records ``alignment(time, trial, component)``: the absolute cosine between output ``i``'s
    weights and principal component ``i``; ``weights(trial, output, input)`` at the end; the
    true ``components(component, input)`` and ``eigenvalue(component)``.
    """
    if k > n:
        raise ConfigError(f"k (outputs) must be at most n (inputs) = {n}, got {k}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    basis_seed, simulation_seed = root.spawn(2)
    eigenvalues, components = covariance_with_spectrum(n, decay, np.random.default_rng(basis_seed))
    mixing = components.T * np.sqrt(eigenvalues)  # x = mixing @ z has covariance C

    def draw(step: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((trials, n)) @ mixing.T

    simulation = Simulation(
        pca_network(n, k, get_rule(rule).name, eta), trials=trials, backend=backend,
        seed=simulation_seed, dtype=dtype, device=device,
    )
    run = simulation.run(steps, inputs={"input.x": draw}, record={"weights.w": record_every})
    learned = run["weights.w"].rename({"weights_post": "output", "weights_pre": "input"})
    aligned = alignment(learned, components[:k], unit_dim="output", input_dim="input")
    dataset = xr.Dataset(
        {
            "alignment": aligned.assign_attrs(long_name="|cos(w_i, PC_i)|", units="1"),
            "weights": learned.isel(time=-1, drop=True).drop_vars("step", errors="ignore"),
            "components": (("component", "input"), components[:k]),
            "eigenvalue": (("component",), eigenvalues[:k]),
        },
        coords={"component": np.arange(k), "output": np.arange(k), "input": np.arange(n)},
    )
    dataset.attrs.update({key: value for key, value in run.attrs.items() if key in ("equations", "config")})
    return dataset

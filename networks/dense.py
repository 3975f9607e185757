"""Dense associative memories of +-1 units, built on the engine, and the ``dense.capacity`` protocol.

Krotov and Hopfield (2016, NeurIPS, "Dense associative memory for pattern recognition")
replace the quadratic Hopfield energy by E(s) = -sum_mu F(xi_mu . s) with the polynomial
interaction F(x) = x^n (n >= 2; n = 2 is the classical network); the capacity grows like
N^(n-1). Demircigil, Heusel, Loewe, Upgang and Vermet (2017, J. Stat. Phys. 168:288) take
F(x) = exp(x) and store exponentially many patterns.

A unit update sets s_i to the sign of
h_i = sum_mu [F(xi_mu,i + m_mu,i) - F(-xi_mu,i + m_mu,i)],  m_mu,i = sum_{j != i} xi_mu,j s_j,
the energy difference between s_i = -1 and s_i = +1, so asynchronous updates never increase
the energy. With the overlaps M_mu = xi_mu . s and G(m) = F(m+1) - F(m-1), and +-1 patterns and
states, h_i = sum_mu xi_mu,i G(M_mu - xi_mu,i s_i) = (X^T a)_i + s_i sum_mu b_mu with
a = G(M-1) + G(M+1) and b = G(M-1) - G(M+1): a separation function of the summed similarity.

On the engine: population ``units`` (N, the state ``x``/``y``), population ``memories`` (one
unit per stored pattern), projection ``patterns`` from the units to the memories (its weights
are the stored patterns, written by the storage ``rule``: the library's ``hebbian`` with the
memory unit being written one-hot, or any other rule), which drives the memories' overlaps
``I = M`` and feeds ``a`` back to the units (``h = X^T a``); a fixed all-ones projection
``total`` feeds back ``k = sum_mu b_mu``. A synchronous step runs the stages ``drive``
(overlaps), ``separation`` (a, b), ``feedback`` and ``units`` (``y = sign(h + y k)``, ties
keep). Asynchronous recall, which keeps M up to date in O(P) per flip, is the registered fast
path ``dense.recall.async``.

Numerics: the polynomial form is evaluated on integers (exact in float64, so every backend sees
the same ties) while N^n < 2^50, else on x / N (a positive rescaling that leaves every sign
unchanged); the exponential form is evaluated as exp(M - max M), also a positive rescaling.
``energy`` returns -sum_mu (xi_mu . s)^n for the polynomial form and -log sum_mu exp(xi_mu . s)
for the exponential form (the log of minus the Demircigil energy, which keeps its ordering
without overflow).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import xarray as xr

from plasticity.backends.runtime import Runtime, fast_path_replacing, resolve
from plasticity.errors import ConfigError, EquationError
from plasticity.network import Network
from plasticity.networks._assoc import BinaryMemory, check_binary, count_patterns, flip_bits, order_seeds, trial_generators
from plasticity.networks.hopfield import UPDATES, Retrieval, _storage_rule, sync_recall
from plasticity.networks.memory_fast_paths import dense_gain
from plasticity.params import Choice, Int, Real, RuleSpec, check
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = ["SEPARATIONS", "MAX_POWER", "dense_network", "DenseAssociativeMemory", "capacity"]

SEPARATIONS = ("polynomial", "exp")
#: Largest polynomial power (the separation is written out as products).
MAX_POWER = 30
#: Stages of a dense memory's step: overlaps, separation, feedback of the fields, units' update.
STAGES = ("drive", "separation", "feedback", "units", "plasticity")
STORE_STAGES = ("drive", "plasticity")
RECALL_STAGES = ("drive", "separation", "feedback", "units")
_OFFERED = "x_pre (the pattern), y_post (1 on the memory unit being written, else 0), I_post (its overlap)"


def _power_of(text: str, power: int) -> str:
    return " * ".join([f"({text})"] * power)


def _separation(power: int, exponential: bool) -> list[str]:
    """Equations of a = G(M-1) + G(M+1) and b = G(M-1) - G(M+1) over the overlaps M = I."""
    if exponential:
        return [
            "top = max(I)",
            "a = exp(I + 2 - top) - exp(I - 2 - top)",
            "b = 2 * exp(I - top) - exp(I - 2 - top) - exp(I + 2 - top)",
        ]
    up, down, mid = (_power_of(f"gain * (I {shift})", power) for shift in ("+ 2", "- 2", "+ 0"))
    return [f"a = {up} - {down}", f"b = 2 * {mid} - {down} - {up}"]


def _check_form(power: Any, separation: Any) -> tuple[int, bool]:
    separation = check("separation", separation, Choice(*SEPARATIONS))
    if separation == "polynomial":
        power = check("power", power, Int(2, MAX_POWER))
    return int(power), separation == "exp"


def dense_network(n: int, count: int, rule: Any = "hebbian", *, power: int = 3, separation: str = "polynomial",
                  shared: bool = False) -> Network:
    """A dense associative memory of ``n`` +-1 units and ``count`` memory units whose weights the
    storage ``rule`` writes (see the module docstring for its populations and stages). ``shared``:
    one pattern matrix for every trial (many cues of one memory) instead of one per trial."""
    rule = _storage_rule(rule)
    power, exponential = _check_form(power, separation)
    units = Population(
        n,
        {"units": ["y = where(h + y * k > 0, 1, where(h + y * k < 0, -1, y))", "x = y"]},
        init={"x": 0.0, "y": 0.0},
        name="units",
    )
    memories = Population(
        count, {"separation": _separation(power, exponential)}, init={"y": 0.0},
        params={} if exponential else {"gain": dense_gain(n, power)}, name="memories",
    )
    try:
        patterns = Projection(units, memories, rule, source="x", feedback=("a", "h"), init={"w": 0.0}, shared=shared,
                              name="patterns")
    except EquationError as error:
        raise EquationError(f"{error.reason}; a dense memory offers {_OFFERED}", error.equation, error.column) from None
    total = Projection(units, memories, None, source="x", target="J", feedback=("b", "k"), init={"w": 1.0}, shared=True,
                       name="total")
    return Network([units, memories], [patterns, total], stages=STAGES)


def _energy(m: np.ndarray, exponential: bool, power: int) -> np.ndarray:
    if exponential:
        top = m.max(1)
        return -(top + np.log(np.exp(m - top[:, None]).sum(1)))
    return -(m**power).sum(1)


def _store(patterns: np.ndarray, rule: Rule, runtime: Runtime, epochs: int, power: int, separation: str) -> Simulation:
    """A simulation of ``patterns.shape[0]`` dense memories (one per trial) that stored ``patterns``
    (trials, P, N): by the rule's registered batch form, or online on the engine with memory unit
    ``mu`` one-hot while pattern ``mu`` is presented."""
    trials, count, n = patterns.shape
    network = dense_network(n, count, rule, power=power, separation=separation)
    simulation = Simulation(network, trials=trials, backend=runtime.backend, dtype="float64", device=runtime.device)
    batch = fast_path_replacing("dense.storage", rule, runtime.backend)
    if batch is not None:
        simulation.set("patterns.w", runtime.host(batch(runtime.array(patterns, "float64"), epochs, "float64")))
        return simulation
    presented = np.tile(np.asarray(patterns).transpose(1, 0, 2), (epochs, 1, 1))  # (steps, trials, N)
    one_hot = np.tile(np.eye(count)[:, None, :], (epochs, 1, 1))  # (steps, 1, P)
    simulation.advance(count * epochs, inputs={"units.x": presented, "memories.y": one_hot}, stages=STORE_STAGES)
    return simulation


def _recall(simulation: Simulation, cues: np.ndarray, rngs, runtime: Runtime, *, power: int, exponential: bool,
            update: str, max_sweeps: int, record: bool) -> Retrieval:
    """Dense dynamics from ``cues`` (trials, N) with the patterns the simulation stored."""
    stored = simulation.get("patterns.w")
    stored = stored[None] if stored.ndim == 2 else stored
    if update == "sync":
        result = sync_recall(simulation, cues, max_sweeps, record, RECALL_STAGES)
    else:
        scale = 1.0 if exponential else dense_gain(cues.shape[1], power)
        found = runtime.fast_path("dense.recall.async")(
            runtime.array(stored, "float64"), runtime.array(cues, "float64"), order_seeds(rngs), max_sweeps, record,
            exponential=exponential, power=power, scale=scale,
        )
        final = runtime.host(found.states).astype(np.float64)
        trajectory = np.stack(found.frames) if record else None
        result = Retrieval(final, found.sweeps, found.converged, np.zeros(final.shape[0], dtype=bool), None, found.flips,
                           trajectory)
    m = np.einsum("tpi,ti->tp", stored, result.states) if stored.shape[0] > 1 else result.states @ stored[0].T
    result.energy = _energy(m, exponential, power)
    return result


class DenseAssociativeMemory(BinaryMemory):
    """A dense associative memory (Krotov and Hopfield 2016; Demircigil et al. 2017) of +-1 units,
    storing ``patterns`` with the storage ``rule`` (default the library's ``hebbian``) on the engine.

    ``separation="polynomial"`` uses F(x) = x^``power`` (power >= 2), ``"exp"`` uses F(x) = exp(x).

    Example::

        mem = DenseAssociativeMemory(patterns, power=3)
        out = mem.retrieve(cues, update="async", seed=0)
        mem.overlaps(out.states)
    """

    def __init__(self, patterns, *, power: int = 3, separation: str = "polynomial", rule: Any = "hebbian",
                 epochs: int = 1, backend: str = "numba"):
        self.power, self.exponential = _check_form(power, separation)
        self.separation = separation
        self.rule = _storage_rule(rule)
        self._patterns = check_binary(patterns)
        epochs = check("epochs", epochs, Int(1, 10_000))
        stored = _store(self._patterns[None], self.rule, resolve(backend), epochs, self.power, separation)
        self.stored = stored.get("patterns.w")[0]

    def energy(self, states) -> np.ndarray:
        """-sum_mu (xi_mu . s)^n (polynomial) or -log sum_mu exp(xi_mu . s) (exp) over the stored rows, shape (batch,)."""
        return _energy(self._states(states) @ self.stored.T, self.exponential, self.power)

    def retrieve(
        self,
        cues,
        *,
        update: str = "async",
        max_sweeps: int = 100,
        seed: int | np.random.SeedSequence = 0,
        backend: str = "numba",
        device: str | None = None,
        record: bool = False,
    ) -> Retrieval:
        """Run the dynamics from each cue (row) until no unit changes or ``max_sweeps`` sweeps/steps."""
        check("update", update, Choice(*UPDATES))
        max_sweeps = check("max_sweeps", max_sweeps, Int(1, 1_000_000))
        runtime = resolve(backend, device, "float64")
        s = self._states(cues)
        network = dense_network(self.n, self.stored.shape[0], self.rule, power=self.power, separation=self.separation,
                                shared=True)
        simulation = Simulation(network, trials=s.shape[0], backend=backend, dtype="float64", device=device)
        simulation.set("patterns.w", self.stored)
        return _recall(simulation, s, trial_generators(seed, s.shape[0]), runtime, power=self.power,
                       exponential=self.exponential, update=update, max_sweeps=max_sweeps, record=record)


@protocol("dense.capacity", threads=True)
def capacity(
    *,
    n: Annotated[int, Int(2, 20_000)] = 100,
    power: Annotated[int, Int(2, MAX_POWER)] = 3,
    separation: Annotated[str, Choice(*SEPARATIONS)] = "polynomial",
    rule: Annotated[Any, RuleSpec()] = "hebbian",
    epochs: Annotated[int, Int(1, 10_000)] = 1,
    load: Annotated[float, Real(0, 1000, low_open=True)] = 1.5,
    patterns: Annotated[int, Int(0, 1_000_000)] = 0,
    flip: Annotated[float, Real(0, 1)] = 0.1,
    update: Annotated[str, Choice(*UPDATES)] = "async",
    max_sweeps: Annotated[int, Int(1, 1_000_000)] = 100,
    trials: Annotated[int, Int(1, 1_000_000)] = 50,
    threshold: Annotated[float, Real(0, 1)] = 0.95,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Retrieval in a dense associative memory, trial by trial (see ``hopfield.capacity``).

    Each trial stores its own ``round(load * n)`` random +-1 patterns (or ``patterns``) with the
    storage ``rule`` (``epochs`` passes), cues with the first pattern with a fraction ``flip``
    flipped, and records ``overlap``, ``success`` (overlap >= ``threshold``), ``sweeps``,
    ``converged``, ``cycle`` and ``energy``. The dynamics run in float64 whatever ``dtype`` (the
    fields are exact integers when they fit).
    """
    rule = _storage_rule(rule)
    power, exponential = _check_form(power, separation)
    dense_network(2, 1, rule, power=power, separation=separation)  # a rule the memory cannot run fails before any work
    runtime = resolve(backend, device, "float64")
    count = count_patterns(n, load, patterns)
    if count * n * trials > 2**31:
        raise ConfigError(f"dense.capacity would hold {count} x {n} x {trials} stored values; use fewer trials or patterns")
    rngs = trial_generators(seed, trials)
    xs = np.empty((trials, count, n))
    cues = np.empty((trials, n))
    for t in range(trials):
        xs[t] = rngs[t].integers(0, 2, size=(count, n)) * 2.0 - 1.0
        cues[t] = flip_bits(xs[t, 0], flip, rngs[t])
    simulation = _store(xs, rule, runtime, epochs, power, separation)
    result = _recall(simulation, cues, rngs, runtime, power=power, exponential=exponential, update=update,
                     max_sweeps=max_sweeps, record=False)
    overlap = np.einsum("ti,ti->t", result.states, xs[:, 0]) / n
    dims = ("trial",)
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "final overlap with the cued pattern", "units": "1"}),
            "success": (dims, overlap >= threshold, {"long_name": f"overlap >= {threshold}"}),
            "sweeps": (dims, result.sweeps, {"long_name": "sweeps (steps) that changed the state"}),
            "converged": (dims, result.converged, {"long_name": "a sweep changed no unit"}),
            "cycle": (dims, result.cycle, {"long_name": "synchronous 2-cycle"}),
            "energy": (dims, result.energy, {"long_name": "energy of the final state (see docstring)"}),
            "num_patterns": ((), count, {"long_name": "stored patterns"}),
            "alpha": ((), count / n, {"long_name": "load (stored patterns / units)"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "dense associative memory", "separation": separation, "power": power, "update": update,
               "rule": rule.name},
    )

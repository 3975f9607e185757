"""Classical Hopfield networks of +-1 units, built on the engine, and the ``hopfield.capacity`` protocol.

A memory is one population of N units and a recurrent projection, the couplings (zero
self-coupling, masked), whose rule is the *storage rule*: any rule of the library or one a
user writes. Storage presents the patterns to the units as inputs, one per step, for
``epochs`` passes, and the rule learns them online on the engine (stages ``drive`` and
``plasticity``: the drive gives each unit its local field ``I`` from the couplings as they
are, which rules such as Storkey's read). The library's storage rules (``plasticity rules``):

* ``hebbian``: the library's ``hebb`` with eta = 1 and no decay, J = X^T X (Hopfield 1982,
  PNAS 79:2554; Hopfield's W = J / N up to the factor N, which leaves the dynamics unchanged
  and keeps every field an exact integer, so every backend makes the same decisions);
* ``storkey``: Storkey (1997, ICANN, LNCS 1327:451), written as an equation over the local
  fields;
* ``pseudoinverse``: the projection rule W = X^+ X (Personnaz, Guyon and Dreyfus 1985;
  Kanter and Sompolinsky 1987) by Greville's recursion, which keeps every stored pattern a
  fixed point up to load 1 (with the diagonal removed, up to ~0.5).

A memory's units offer storage rules ``x`` (what a unit sends) and ``y`` (its activity),
both the pattern while it is stored, ``I`` (the local field; ``I_pre`` and ``I_post`` at
either end of a coupling) and ``n`` (the number of units).

Recall: synchronous updates are the units' equations on the same network (``y = sign(I)``,
a field of exactly zero keeping the state; one step is a drive and a unit update), with
2-cycles detected. Asynchronous random-order recall with incremental fields does not fit a
synchronous step, and the batch forms of the ``hebbian`` and ``pseudoinverse`` storage are
faster than presenting patterns one by one: those are registered fast paths
(:mod:`plasticity.networks.memory_fast_paths`), each tested against its engine or reference
twin. A field of exactly zero keeps the unit's state, so the energy E = -1/2 s^T W s never
increases under asynchronous updates. Runs stop per trial when a sweep (step) changes nothing.

The capacity oracle: Amit, Gutfreund and Sompolinsky (1985, PRL 55:1530) give the critical
load 0.138 for Hebbian storage in the large-N limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import xarray as xr

from plasticity.backends.runtime import Runtime, fast_path_replacing, resolve
from plasticity.errors import EquationError
from plasticity.network import Network
from plasticity.networks import memory_fast_paths  # noqa: F401  (registers the fast paths)
from plasticity.networks._assoc import BinaryMemory, check_binary, count_patterns, flip_bits, order_seeds, trial_generators
from plasticity.networks._assoc import common_patterns as shared_patterns
from plasticity.params import Choice, Flag, Int, Real, RuleSpec, check
from plasticity.population import Population
from plasticity.projection import Projection
from plasticity.protocols import protocol
from plasticity.rule import Rule
from plasticity.simulation import Simulation

__all__ = [
    "RULES",
    "UPDATES",
    "STORE_STAGES",
    "RECALL_STAGES",
    "memory_network",
    "sync_recall",
    "HopfieldNetwork",
    "Retrieval",
    "store_weights",
    "capacity",
]

#: The library's storage rules for Hopfield networks (any other rule works too).
RULES = ("hebbian", "storkey", "pseudoinverse")
UPDATES = ("async", "sync")
#: Stages of a storage step (the field from the couplings as they are, then the rule) and of a
#: synchronous recall step (the field, then the units' update).
STORE_STAGES = ("drive", "plasticity")
RECALL_STAGES = ("drive", "units")

#: Bytes of coupling matrices the capacity protocol keeps in memory at once.
_CHUNK_BYTES = 256 * 2**20
#: What a memory's units offer a storage rule, for error messages.
_OFFERED = "x and y (the pattern), I (the local field) and n (the number of units)"


def _storage_rule(rule: Any) -> Rule:
    """``rule`` as a Rule that can store: it must write the couplings ``w``."""
    rule = check("rule", rule, RuleSpec())
    if not any(eq.var == "w" and eq.level == "synapse" for eq in rule.parsed):
        raise EquationError(
            f"rule {rule.name or '(unnamed)'} has no equation for the couplings w, so it cannot store patterns; "
            f"a storage rule writes w (e.g. 'w += y_post * x_pre'); its equations: {'; '.join(rule.equations)}"
        )
    return rule


def memory_network(n: int, rule: Any = "hebbian", *, shared: bool = False) -> Network:
    """A Hopfield network of ``n`` +-1 units whose couplings learn with the storage ``rule``.

    Population ``units`` (variables ``x``, ``y``, ``n``; summed input ``I``) with the synchronous
    update ``y = sign(I)`` (ties keep ``y``) and ``x = y``; projection ``couplings`` from the
    units to themselves (source ``x``, zero self-couplings, initial weights 0). ``shared``: one
    coupling matrix for every trial (many cues of one memory) instead of one per trial.
    A rule that reads what the units do not offer is an EquationError naming the equation.
    """
    rule = _storage_rule(rule)
    units = Population(
        n,
        ["y = where(I > 0, 1, where(I < 0, -1, y))", "x = y"],
        init={"x": 0.0, "y": 0.0, "n": float(n)},
        name="units",
    )
    try:
        couplings = Projection(
            units, units, rule, source="x", init={"w": 0.0}, mask=~np.eye(n, dtype=bool), shared=shared, name="couplings"
        )
    except EquationError as error:
        raise EquationError(f"{error.reason}; a memory's units offer {_OFFERED}", error.equation, error.column) from None
    return Network([units], [couplings])


@dataclass
class Retrieval:
    """Result of a recall: final ``states`` (trials, N), per-trial ``sweeps`` (steps that changed the
    state), ``converged`` (a sweep changed nothing), ``cycle`` (a synchronous 2-cycle), the
    ``energy`` -1/2 s^T W s of the final states, ``flips`` (unit changes in all) and, when
    recorded, the ``trajectory`` (sweep, trial, N)."""

    states: np.ndarray
    sweeps: np.ndarray
    converged: np.ndarray
    cycle: np.ndarray
    energy: np.ndarray
    flips: np.ndarray
    trajectory: np.ndarray | None = None


# ----------------------------------------------------------------------------- storage


def _store(patterns: np.ndarray, rule: Rule, runtime: Runtime, epochs: int) -> Simulation:
    """A simulation of ``patterns.shape[0]`` memories (one per trial) that stored ``patterns``
    (trials, P, N) with ``rule``: by the rule's registered batch form, or online on the engine.
    Every initial value of a memory is a constant, so the simulation's seed does not matter."""
    trials, count, n = patterns.shape
    network = memory_network(n, rule)
    simulation = Simulation(network, trials=trials, backend=runtime.backend, dtype=runtime.dtype, device=runtime.device)
    batch = fast_path_replacing("hopfield.storage", rule, runtime.backend)
    if batch is not None:
        simulation.set("couplings.w", runtime.host(batch(runtime.array(patterns, "float32"), epochs, runtime.dtype)))
        return simulation
    presented = np.tile(np.asarray(patterns).transpose(1, 0, 2), (epochs, 1, 1))  # (steps, trials, N)
    simulation.advance(count * epochs, inputs={"units.x": presented, "units.y": presented}, stages=STORE_STAGES)
    return simulation


def _couplings(patterns: np.ndarray, rule: Rule, runtime: Runtime, epochs: int):
    """The couplings (trials, N, N) as an array of ``runtime``, by the batch form where there is one."""
    batch = fast_path_replacing("hopfield.storage", rule, runtime.backend)
    if batch is not None:
        return batch(runtime.array(patterns, "float32"), epochs, runtime.dtype)
    return runtime.array(_store(patterns, rule, runtime, epochs).get("couplings.w"))


def store_weights(patterns, rule: Any = "hebbian", *, epochs: int = 1, backend: str = "numba") -> np.ndarray:
    """The (N, N) float64 couplings that store the +-1 ``patterns`` (rows) with ``rule``."""
    rule = _storage_rule(rule)
    epochs = check("epochs", epochs, Int(1, 10_000))
    x = check_binary(patterns)
    return np.asarray(_store(x[None], rule, resolve(backend, None, "float64"), epochs).get("couplings.w")[0])


# ----------------------------------------------------------------------------- recall


def sync_recall(simulation: Simulation, cues: np.ndarray, max_sweeps: int, record: bool,
                stages: tuple[str, ...] = RECALL_STAGES) -> Retrieval:
    """Synchronous recall on the engine from ``cues`` (trials, N) of a memory whose population
    ``units`` holds the state in ``x`` and ``y``: each step runs ``stages`` (the fields, then the
    units' update); each trial stops (its result frozen) when a step changes nothing or it enters
    a 2-cycle. The energy is left to the caller (None)."""
    trials = cues.shape[0]
    simulation.set("units.x", cues)
    simulation.set("units.y", cues)
    # states compared in the simulation's own dtype (+-1 and the kept values of zero fields are
    # exact in either): no conversion per step
    states = simulation.get("units.y")
    previous = states.copy()
    sweeps = np.zeros(trials, dtype=np.int64)
    flips = np.zeros(trials, dtype=np.int64)
    converged = np.zeros(trials, dtype=bool)
    cycle = np.zeros(trials, dtype=bool)
    active = np.ones(trials, dtype=bool)
    frames = [states.astype(np.int8)] if record else []
    for _ in range(max_sweeps):
        if not active.any():
            break
        simulation.advance(1, plastic=False, stages=stages)
        new = simulation.get("units.y")
        changed = np.count_nonzero(new != states, axis=1)
        moved = active & (changed > 0)
        converged |= active & ~moved
        cycled = moved & (new == previous).all(1)
        cycle |= cycled
        flips[moved] += changed[moved]
        sweeps[moved] += 1
        if moved.all():  # every trial moved: the arrays change places, nothing is copied
            previous, states = states, new
        else:
            previous[moved] = states[moved]
            states[moved] = new[moved]
        active &= moved & ~cycled
        if record:
            frames.append(states.astype(np.int8))
    states = states.astype(np.float64)
    return Retrieval(states, sweeps, converged, cycle, None, flips, np.stack(frames) if record else None)


def _sync_recall(simulation: Simulation, cues: np.ndarray, max_sweeps: int, record: bool) -> Retrieval:
    """:func:`sync_recall` of a Hopfield network, with the energy -1/2 s^T W s of each trial's final
    state from one more drive of that state."""
    result = sync_recall(simulation, cues, max_sweeps, record)
    simulation.set("units.x", result.states)
    simulation.advance(1, plastic=False, stages=("drive",))
    result.energy = -0.5 * np.einsum("ti,ti->t", result.states, simulation.get("units.I").astype(np.float64))
    return result


def _async_recall(couplings, cues: np.ndarray, rngs, runtime: Runtime, max_sweeps: int, record: bool) -> Retrieval:
    """Asynchronous recall (the ``recall.async`` fast path) from couplings (1 or trials, N, N)."""
    states = runtime.array(cues)
    result = runtime.fast_path("hopfield.recall.async")(couplings, states, order_seeds(rngs), max_sweeps, record)
    final = runtime.host(result.states).astype(np.float64)
    trajectory = np.stack(result.frames) if record else None
    cycle = np.zeros(final.shape[0], dtype=bool)
    return Retrieval(final, result.sweeps, result.converged, cycle, result.energy, result.flips, trajectory)


# ----------------------------------------------------------------------------- public model


class HopfieldNetwork(BinaryMemory):
    """A classical Hopfield network storing +-1 ``patterns`` (rows) with the storage ``rule``
    (a library name, a table of equations or a :class:`~plasticity.rule.Rule`), ``epochs``
    passes, on the engine.

    ``weights`` is the (N, N) float64 coupling matrix the rule wrote (zero diagonal);
    ``patterns`` the stored patterns as a plain float array. ``retrieve`` runs asynchronous or
    synchronous dynamics from a batch of cues on the numba, numpy or torch backend.

    Example::

        net = HopfieldNetwork(np.sign(np.random.default_rng(0).standard_normal((50, 500))))
        result = net.retrieve(net.patterns[:5], update="async", seed=1)
        net.overlaps(result.states)  # (5, 50)
    """

    def __init__(self, patterns, rule: Any = "hebbian", *, epochs: int = 1, dtype: str = "float32",
                 backend: str = "numba"):
        self.rule = _storage_rule(rule)
        self.dtype = check("dtype", dtype, Choice("float32", "float64"))
        self._patterns = check_binary(patterns)
        self.weights = store_weights(self._patterns, self.rule, epochs=epochs, backend=backend)

    def energy(self, states) -> np.ndarray:
        """E = -1/2 s^T W s for each state (row) of ``states``; float64, shape (batch,)."""
        s = self._states(states)
        return -0.5 * np.einsum("ti,ij,tj->t", s, self.weights, s)

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
        """Run the dynamics from each cue (row) until no unit changes or ``max_sweeps`` sweeps/steps.

        ``seed`` fixes the random unit order of asynchronous sweeps (one generator per cue).
        With ``record=True`` the state after every sweep is kept in ``trajectory``.
        """
        check("update", update, Choice(*UPDATES))
        max_sweeps = check("max_sweeps", max_sweeps, Int(1, 1_000_000))
        runtime = resolve(backend, device, self.dtype)
        s = self._states(cues)
        if update == "async":
            couplings = runtime.array(self.weights[None])
            return _async_recall(couplings, s, trial_generators(seed, s.shape[0]), runtime, max_sweeps, record)
        simulation = Simulation(memory_network(self.n, self.rule, shared=True), trials=s.shape[0], backend=backend,
                                dtype=self.dtype, device=device)
        simulation.set("couplings.w", self.weights)
        return _sync_recall(simulation, s, max_sweeps, record)


# ----------------------------------------------------------------------------- protocol


def _random_patterns(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """(n, count) unbiased random +-1 values (float32) from packed random bytes: ``count`` patterns as columns."""
    bits = np.unpackbits(rng.integers(0, 256, size=(count * n + 7) // 8, dtype=np.uint8))[: count * n]
    return bits.reshape(n, count).astype(np.float32) * np.float32(2.0) - np.float32(1.0)


@protocol("hopfield.capacity", threads=True)
def capacity(
    *,
    n: Annotated[int, Int(2, 20_000)] = 1000,
    rule: Annotated[Any, RuleSpec()] = "hebbian",
    epochs: Annotated[int, Int(1, 10_000)] = 1,
    load: Annotated[float, Real(0, 100, low_open=True)] = 0.1,
    patterns: Annotated[int, Int(0, 1_000_000)] = 0,
    flip: Annotated[float, Real(0, 1)] = 0.0,
    update: Annotated[str, Choice(*UPDATES)] = "async",
    max_sweeps: Annotated[int, Int(1, 1_000_000)] = 100,
    trials: Annotated[int, Int(1, 1_000_000)] = 50,
    threshold: Annotated[float, Real(0, 1)] = 0.95,
    common_patterns: Annotated[bool, Flag()] = False,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Retrieval of a stored pattern from a corrupted cue in a classical Hopfield network.

    Each trial stores its own ``round(load * n)`` random unbiased +-1 patterns (or ``patterns``
    when > 0) with the storage ``rule`` (a library name such as ``"hebbian"``, ``"storkey"``,
    ``"pseudoinverse"``, or a table of equations: ``[params.rule] equations = [...]``), ``epochs``
    passes, cues the network with the first pattern with a fraction ``flip`` of its units flipped,
    runs ``update`` dynamics for at most ``max_sweeps`` sweeps and records the final ``overlap``
    with the pattern, ``success`` (overlap >= ``threshold``), ``sweeps`` that changed the state,
    ``converged``, ``cycle`` (synchronous 2-cycle) and the final ``energy`` -1/2 s^T W s of the
    couplings the rule wrote. Trials run in batches; the numba backend spreads them over the cores.
    With ``common_patterns`` the patterns are the trial's common patterns
    (``networks._assoc.common_patterns``): the first n units of those any other protocol with the
    option (and ``vector_hash.continuum``) stores with the same seed.
    """
    rule = _storage_rule(rule)
    memory_network(2, rule)  # a rule the memory cannot run is an error before any pattern is drawn
    runtime = resolve(backend, device, dtype)
    count = count_patterns(n, load, patterns)
    rngs = trial_generators(seed, trials)

    overlap = np.empty(trials)
    sweeps = np.empty(trials, dtype=np.int64)
    converged = np.empty(trials, dtype=bool)
    cycle = np.empty(trials, dtype=bool)
    energy = np.empty(trials)
    # Hebbian asynchronous recall from the patterns (O(P) per unit check and flip) is cheaper than
    # forming each trial's couplings (O(P N^2)) while P is small; both give the same decisions exactly.
    from_patterns = fast_path_replacing("hopfield.recall", rule, backend) if update == "async" else None
    from_patterns = from_patterns if count < n // 2 and count * n < 2**24 else None
    itemsize = np.dtype(dtype).itemsize
    chunk = int(max(1, min(trials, _CHUNK_BYTES // (n * (count if from_patterns else n) * itemsize))))
    for start in range(0, trials, chunk):
        stop = min(trials, start + chunk)
        xt = np.empty((stop - start, n, count), dtype=np.float32)
        xs = xt.transpose(0, 2, 1)  # (trials, patterns, units), a view
        cues = np.empty((stop - start, n))
        for k, t in enumerate(range(start, stop)):
            xt[k] = shared_patterns(rngs[t], count, n).T if common_patterns else _random_patterns(rngs[t], n, count)
            cues[k] = flip_bits(xs[k, 0], flip, rngs[t])
        if from_patterns is not None:
            found = from_patterns(xs, cues, order_seeds(rngs[start:stop]), max_sweeps)
            result = Retrieval(found.states.astype(np.float64), found.sweeps, found.converged,
                               np.zeros(stop - start, dtype=bool), found.energy, found.flips)
        elif update == "async":
            couplings = _couplings(xs, rule, runtime, epochs)
            result = _async_recall(couplings, cues, rngs[start:stop], runtime, max_sweeps, False)
        else:
            simulation = _store(xs, rule, runtime, epochs)
            result = _sync_recall(simulation, cues, max_sweeps, False)
        overlap[start:stop] = np.einsum("ti,ti->t", result.states, xs[:, 0]) / n
        sweeps[start:stop] = result.sweeps
        converged[start:stop] = result.converged
        cycle[start:stop] = result.cycle
        energy[start:stop] = result.energy
    dims = ("trial",)
    return xr.Dataset(
        {
            "overlap": (dims, overlap, {"long_name": "final overlap with the cued pattern", "units": "1"}),
            "success": (dims, overlap >= threshold, {"long_name": f"overlap >= {threshold}"}),
            "sweeps": (dims, sweeps, {"long_name": "sweeps (steps) that changed the state"}),
            "converged": (dims, converged, {"long_name": "a sweep changed no unit"}),
            "cycle": (dims, cycle, {"long_name": "synchronous 2-cycle"}),
            "energy": (dims, energy, {"long_name": "energy -1/2 s^T W s of the final state"}),
            "num_patterns": ((), count, {"long_name": "stored patterns"}),
            "alpha": ((), count / n, {"long_name": "load (stored patterns / units)"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"model": "classical Hopfield network", "rule": rule.name, "update": update},
    )

"""The numba backend (the default): generated kernels, cached on disk, drive fused with plasticity.

Population equations and every projection's rule are compiled from their expression
trees by :mod:`plasticity.backends.numba_codegen` into one module per network (population
kernels: :mod:`~plasticity.backends.numba_units`, plasticity kernels:
:mod:`~plasticity.backends.numba_plasticity`), kept by :mod:`~plasticity.backends.numba_cache`
in ``$PLASTICITY_CACHE_DIR`` (default ``~/.cache/plasticity/kernels``) with numba's machine
code beside it, so a second process does not compile again. What a step computes is
exactly what :mod:`plasticity.backends.numpy_backend` computes; the test suite checks it.

The fused pass. With the default stage order (drive, units, plasticity) the drive of
step ``t + 1`` reads the weights the plasticity of step ``t`` has just written. So the
plasticity pass of a projection (separate weights per trial) also accumulates
``sum_j w_new[i, j] * x_next[j]``, where ``x_next`` is the pre source as the next drive
will see it (the next step's input when the source is driven by an input, else its
current value), and the next drive only adds that vector: a step reads and writes each
weight once. The precomputed drive is used only where nothing between the plasticity
and the next drive can change the source (no unit equations run in between), and only
while the source and weights still have the write counts it was computed for; it is dropped
on :meth:`NumbaEngine.set`. The last step of a run (``next_inputs`` is ``None``) precomputes
it too, from the source as it is: the first step of the next run takes it unless its input
to the source holds other values, so a run of a few steps costs what its steps cost instead
of a pass over the weights more. :attr:`NumbaEngine.fused_steps` counts the drives that took it.
The precomputed drive also checks the weights it summed: a sum of products with a NaN or
infinite weight is NaN or infinite (``fastmath`` here never assumes finite values), so a
finite drive shows the whole updated matrix finite and :meth:`NumbaEngine.nonfinite` scans
the ``(trials, post)`` drive instead of the weights (and the weights only when the drive is not
finite, to find what is).

Shared weights (a minibatch) drive with BLAS, and their separable updates are generated
kernels that scale rows and columns and add one BLAS product of factor matrices (see
:func:`~plasticity.backends.numba_plasticity.separable_terms`). Every drive and feedback product is
one in-place BLAS call without copies (:func:`~plasticity.backends.blas.gemm`, on Intel MKL where
the installed torch carries it, else scipy's BLAS; a product added to a sum is accumulated by
BLAS itself, ``beta = 1``).

Work a step can skip. The engine counts writes to every state array (inputs, :meth:`NumbaEngine.set`,
unit stages, drives and feedback into their summed inputs, a projection's plasticity). A drive
keeps its product (the projection's contribution) and reuses it while neither its source nor
its weights were written since: a clamped input layer's drive is computed once per clamp, not
once per step (:attr:`NumbaEngine.cached_drives` counts reuses). The summed input is still reset
and re-accumulated from the contributions, so the result is the reference's. A projection whose
source changed at its previous drive as well computes straight into the target. The first
product into a summed input after its reset assigns instead of adding to zeros.
:meth:`NumbaEngine.nonfinite` checks arrays in place and skips those not written since they were
last found finite.

Compiled runs. A run without inputs or recording goes through :meth:`NumbaEngine.run_compiled`:
once the engine has spent :data:`COMPILE_AFTER_SECONDS` stepping (steps that compiled kernels
left out), the step program generated as
one numba function (:mod:`~plasticity.backends.numba_program`), looped over the steps, with
the same write counts and drive reuse, so no stage is dispatched from Python
(:attr:`NumbaEngine.compiled_steps` counts the steps run so). A compiled run in which no rule
runs splits its trials into blocks, one per thread, run at once from the first step to the last
(:attr:`NumbaEngine.split_runs` counts such runs; see :mod:`~plasticity.backends.numba_program`).

Threads. numba kernels run threaded only from
:data:`~plasticity.backends.numba_source.PARALLEL_MIN_ELEMENTS` elements, and only while
:func:`~plasticity.backends.blas.threads` allows more than one (not in a forked child); every BLAS call of a
step goes to one library (:mod:`~plasticity.backends.blas`), which with MKL runs on numba's
thread count, so ``numba.set_num_threads`` (or ``NUMBA_NUM_THREADS``) governs both; numpy's
OpenBLAS pool stays idle, so two pools never spin against each other. Both use every core by
default. On a machine whose cores other programs share, one thread (``NUMBA_NUM_THREADS=1``,
and ``OPENBLAS_NUM_THREADS=1`` where scipy's BLAS is used) can be faster: spinning worker
threads then cost more than they bring (``benchmarks/results/pc.md``).
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping, NamedTuple

import numba
import numpy as np

from plasticity._aligned import aligned_zeros
from plasticity.backends.blas import gemm, threads
from plasticity.backends.numba_cache import load_module
from plasticity.backends.numba_codegen import generate
from plasticity.backends.numba_kernels import _all_finite, _matvec
from plasticity.backends.numba_plasticity import COLUMN_CHUNK
from plasticity.backends.numba_program import (
    DRIVE_FIELDS,
    DriveSlot,
    EngineView,
    FeedbackSlot,
    PlasticityCall,
    StepProgram,
    step_program,
)
from plasticity.backends.writes import written_keys
from plasticity.network import Network, fusion_mode

__all__ = ["COMPILE_AFTER_SECONDS", "SPLIT_MIN_WORK", "FUSED_STEP_MIN_SYNAPSES", "build", "NumbaEngine"]

_RESET, _DRIVE, _FEEDBACK, _UNITS, _PLASTICITY = range(5)
#: Seconds an engine spends in steps taken one by one before it compiles its step program for
#: runs without inputs or recording. Compiling takes about this long per network (once; the
#: machine code is cached on disk) and then saves a good part of such a run, so a workload that has
#: already run this long is likely to repay it, and a short one never waits for it (compiling
#: when the time spent equals the price caps the total at twice the better choice made in hindsight).
COMPILE_AFTER_SECONDS = 10.0
#: A compiled run in which no rule runs splits its trials into blocks run at once, a thread each,
#: from this much work: steps x trials x (units + synapses of every projection), about the
#: multiply-adds and unit updates it makes: below it, splitting predictive coding's runs on 2
#: cores lost time, above it gained (the sizes measured are in ``benchmarks/README.md``).
SPLIT_MIN_WORK = 1 << 24
#: A run in which a projection whose update can precompute the next drive (:func:`fusion_mode`)
#: learns with at least this many synapses (trials x post x pre) goes step by step, not as a
#: compiled program: the fused pass reads and writes each weight once a step, where a program
#: (which does not fuse) reads the weights again for the drive. Oja, trials = 1, float32, measured
#: side by side (``benchmarks/README.md``): the program was faster at N = 128 and 256 (0.79x, 0.47x of
#: the stepped time: dispatch from Python dominates) and 1.8-2.8x slower from N = 512 (2^18 synapses).
FUSED_STEP_MIN_SYNAPSES = 1 << 18
#: A step taking longer than this is checked for kernels compiled during it (first calls), whose
#: time does not count towards COMPILE_AFTER_SECONDS: a network's first steps would otherwise
#: count its kernels' compile (seconds) as stepping and trigger the program's compile at once.
_SLOW_STEP_SECONDS = 0.05


def _accumulate(target: np.ndarray, value: np.ndarray, assign: bool) -> None:
    if assign:
        np.copyto(target, value)
    else:
        target += value


class _Ready(NamedTuple):
    """A drive precomputed by a fused plasticity pass and the write counts of its source and weights at
    which it holds: used by the next drive of the projection if both still have them."""

    drive: np.ndarray
    source_key: str
    source_version: int
    weights_key: str
    weights_version: int


class NumbaEngine:
    """State and step of one network with generated numba kernels."""

    backend = "numba"

    def __init__(self, network: Network, state: Mapping[str, np.ndarray], *, trials: int, dtype: str, dt: float):
        self.network = network
        self.trials = trials
        self.dtype = np.dtype(dtype)
        self.dt = float(dt)
        # the initial state becomes the engine's (no copy when it is already in the dtype: the simulation hands it over)
        self.arrays = {key: np.ascontiguousarray(value, dtype=self.dtype) for key, value in state.items()}
        for name, projection in network.projections.items():
            if projection.mask is not None:
                self.arrays[f"{name}.__mask__"] = np.ascontiguousarray(projection.mask, dtype=self.dtype)
        self.source = generate(network, trials, dtype)
        self.module = load_module(self.source.text)
        # one parameter vector per population, shared by its stage kernels and the compiled programs
        # (all read it when called, so set_param changes every later step)
        self._params = {name: np.array(list(population.params.values()), dtype=np.float64)
                        for name, population in network.populations.items()}
        self._param_slots = {f"{name}.{param}": (self._params[name], index) for name, population in network.populations.items()
                             for index, param in enumerate(population.params)}
        self._units = {}
        for key, spec in self.source.units.items():
            self._units[key] = (getattr(self.module, spec.function), self._params[key[0]], [self.arrays[k] for k in spec.arrays])
        self._plasticity = {}
        self._fusion: dict[str, bool | None] = {}
        self._ready: dict[str, _Ready] = {}
        self._proofs: dict[str, tuple[np.ndarray, int]] = {}  # weights key -> (drive summed over them, write count)
        # ids of the arrays indexed by trial first (EngineView.trial_first): populations' state and
        # what projections with weights per trial hold here, their scratch and drive products below
        self._trial_first = {id(array) for key, array in self.arrays.items()
                             if key.split(".", 1)[0] in network.populations
                             or (not key.endswith(".__mask__") and key.split(".", 1)[0] in network.projections
                                 and not network.projections[key.split(".", 1)[0]].shared)}
        for name, spec in self.source.plasticity.items():
            projection = network.projections[name]
            sizes = {
                "trials": trials,
                "npre": projection.pre.n,
                "npost": projection.post.n,
                "chunks": -(-projection.pre.n // COLUMN_CHUNK),
            }
            buffers = [aligned_zeros(tuple(sizes.get(d, d) for d in shape), kind) for _, shape, kind in spec.buffers]
            if not projection.shared:
                self._trial_first.update(id(buffer) for buffer, (_, shape, _) in zip(buffers, spec.buffers, strict=True)
                                         if shape[:1] == ("trials",))
            fixed = (
                np.array(spec.params, dtype=np.float64),
                trials,
                projection.post.n,
                projection.pre.n,
            )
            self._fusion[name] = fusion_mode(network, name) if spec.fusable else None
            scratch = (aligned_zeros((trials, projection.pre.n), self.dtype), aligned_zeros((trials, projection.post.n), self.dtype),
                       np.zeros(trials, np.int64))
            if not projection.shared:
                self._trial_first.update(map(id, scratch))
            arrays = [self.arrays[k] for k in spec.arrays] + buffers
            self._plasticity[name] = PlasticityCall(getattr(self.module, spec.function), fixed, scratch, arrays, spec.counts)
        # drive caching: a write counter per state key; a projection's drive contribution is
        # reused while neither its source nor its weights were written since it was computed
        self._version = dict.fromkeys(self.arrays, 0)
        self._writes = written_keys(network, self.arrays)
        self._contribution: dict[str, DriveSlot] = {}
        for row, (name, projection) in enumerate(network.projections.items()):
            source_key, weights_key = f"{projection.pre.name}.{projection.source}", f"{name}.w"
            self._contribution[name] = DriveSlot(
                row, source_key, weights_key, aligned_zeros((trials, projection.post.n), self.dtype), projection.shared,
                self.arrays[source_key], self.arrays[weights_key], self.arrays[f"{projection.post.name}.{projection.target}"],
            )
            self._trial_first.add(id(self._contribution[name].contribution))
        # what the drive cache knows, a row per projection (DRIVE_FIELDS): the step path and
        # compiled programs (given it as one int array) keep the same table
        self._drives = [[0] * len(DRIVE_FIELDS) for _ in network.projections]
        self._feedbacks = {
            name: FeedbackSlot(
                projection.shared,
                self.arrays[f"{name}.w"],
                self.arrays[f"{projection.post.name}.{projection.feedback[0]}"],
                self.arrays[f"{projection.pre.name}.{projection.feedback[1]}"],
            )
            for name, projection in network.projections.items()
            if projection.feedback is not None
        }
        self._plan = self._program_plan()
        # compiled step programs by the stages they run (None: all), generated on the first run that can use one
        self._programs: dict[Any, StepProgram | None] = {}
        # update tallies of the programs for presented data (run_presented), by the program's key
        self._presented: dict[Any, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        self._stage_plans: dict[frozenset[str], list[tuple[int, Any, tuple[str, ...]]]] = {}
        self._verified: dict[str, int] = {}
        self.fused_steps = 0
        self.cached_drives = 0
        self.compiled_steps = 0
        self.split_runs = 0  # compiled runs whose trials were split into blocks run on threads at once
        self.split_min_work = SPLIT_MIN_WORK  # from how much work a run splits (inf: never)
        self._step_work = trials * (sum(population.n for population in network.populations.values())
                                    + sum(projection.pre.n * projection.post.n for projection in network.projections.values()))
        self.stepped_seconds = 0.0  # in step(), towards COMPILE_AFTER_SECONDS; steps that compiled kernels left out
        self._kernel_count = 0  # compiled kernels when a slow step last looked
        self.provenance = {
            "numba_version": numba.__version__,
            "numba_kernels": self.module.__file__.rsplit("/", 1)[-1],
            "numba_fused_projections": ",".join(n for n, mode in self._fusion.items() if mode is not None),
        }

    def dispatchers(self) -> list[Any]:
        """Every numba dispatcher this engine calls (to count compilations and cache hits)."""
        found = [function for function, *_ in self._units.values()]
        found += [kernel for kernel, *_ in self._plasticity.values()]
        return found + [_matvec, _all_finite]

    def program_view(self) -> EngineView:
        """What a compiled step program needs of this engine (:mod:`~plasticity.backends.numba_program`)."""
        return EngineView(
            network=self.network, trials=self.trials, dtype=self.dtype, arrays=self.arrays, keys=tuple(self._version),
            drives=self._contribution, feedbacks=self._feedbacks, plasticity=self._plasticity, plan=self._plan,
            kernels_module=self.module.__name__, trial_first=frozenset(self._trial_first),
        )

    def _program_plan(self) -> list[tuple[int, Any, tuple[str, ...]]]:
        """The step program with every lookup done once: (operation code, what it needs, keys it writes).

        A summed input reset and then first written by a drive or feedback, with nothing
        between them reading it, is not zeroed: that first product assigns instead of adding.
        """
        program = self.network.program
        assigns: set[int] = set()
        for position, operation in enumerate(program):
            if operation.kind != "reset":
                continue
            for population, var in operation.targets:
                key = f"{population}.{var}"
                for later in range(position + 1, len(program)):
                    other = program[later]
                    if other.kind not in ("drive", "feedback") or key in self._reads(other):
                        break
                    if self._writes[(other.kind, other.projection)] == (key,):
                        assigns.add(later)
                        break
        assigned = {self._writes[(program[k].kind, program[k].projection)][0] for k in assigns}
        plan = []
        for position, operation in enumerate(program):
            kind = operation.kind
            if kind == "reset":
                keys = tuple(f"{population}.{var}" for population, var in operation.targets)
                plan.append((_RESET, [self.arrays[key] for key in keys if key not in assigned], keys))
            elif kind == "units":
                plan.append((_UNITS, self._units[(operation.population, operation.stage)],
                             self._writes[("units", operation.population, operation.stage)]))
            elif kind == "plasticity":
                plan.append((_PLASTICITY, operation.projection, self._writes[(kind, operation.projection)]))
            else:
                code = _DRIVE if kind == "drive" else _FEEDBACK
                plan.append((code, (operation.projection, position in assigns), self._writes[(kind, operation.projection)]))
        return plan

    def _reads(self, operation) -> tuple[str, ...]:
        """State keys a drive or feedback reads."""
        if operation.kind == "drive":
            slot = self._contribution[operation.projection]
            return (slot.source_key, slot.weights_key)
        projection = self.network.projections[operation.projection]
        return (f"{projection.post.name}.{projection.feedback[0]}", f"{operation.projection}.w")

    # state access -----------------------------------------------------------------------
    def get(self, key: str) -> np.ndarray:
        return self.arrays[key].copy()

    def read_into(self, key: str, out: np.ndarray) -> None:
        """Copy ``key`` into ``out`` (a record's slot), with no copy between."""
        np.copyto(out, self.arrays[key])

    def set(self, key: str, value: np.ndarray) -> None:
        array = self.arrays[key]
        array[...] = value
        self._version[key] += 1
        self._ready.clear()
        if np.ndim(value) == 0 and np.isfinite(array.flat[0]):  # a number (a switch): checked as stored, not scanned later
            self._verified[key] = self._version[key]

    def set_param(self, key: str, value: float) -> None:
        """Set population parameter ``key`` (``"pop.param"``) for every later step."""
        vector, index = self._param_slots[key]
        vector[index] = value

    def nonfinite(self, keys: Iterable[str]) -> str | None:
        """The first of ``keys`` holding a NaN or infinite value, or None; checked in place (no copy),
        skipping arrays not written since they were last found finite."""
        for key in keys:
            written = self._version[key]
            if self._verified.get(key) == written:
                continue
            proof = self._proofs.get(key)
            if proof is not None and proof[1] == written and _all_finite(proof[0].reshape(-1)):
                self._verified[key] = written
                continue
            if not _all_finite(self.arrays[key].reshape(-1)):
                return key
            self._verified[key] = written
        return None

    # the step -----------------------------------------------------------------------------
    def step(
        self,
        t: float,
        inputs: Mapping[str, np.ndarray],
        plastic: frozenset[str],
        next_inputs: Mapping[str, np.ndarray] | None = None,
        stages: frozenset[str] | None = None,
    ) -> None:
        """Advance one step at time ``t`` (see :mod:`plasticity.network` for the order), running the
        network stages in ``stages`` (None: all).

        ``next_inputs`` are the inputs of the following step of the same run, or ``None``;
        they let the plasticity pass precompute the next drive (in full steps only: a step that
        skips the drive would leave the precomputed one pending).
        """
        start = time.perf_counter()
        arrays, version = self.arrays, self._version
        for key, value in inputs.items():
            if self._ready:
                self._keep_ready(key, value)
            arrays[key][...] = value
            version[key] += 1
        plan = self._plan
        if stages is not None:
            plan, next_inputs = self._stage_plan(stages), None
        for code, payload, writes in plan:
            if code == _UNITS:
                function, params, state = payload
                function(t, self.dt, params, *state)
            elif code == _RESET:
                for array in payload:
                    array.fill(0.0)
            elif code == _DRIVE:
                self._drive(*payload)
            elif code == _FEEDBACK:
                self._feedback(*payload)
            elif payload in plastic:
                self._plasticity_step(payload, t, next_inputs)
            else:
                continue
            for key in writes:
                version[key] += 1
        elapsed = time.perf_counter() - start
        if elapsed < _SLOW_STEP_SECONDS or not self._kernels_compiled():
            self.stepped_seconds += elapsed

    def _keep_ready(self, key: str, value: np.ndarray) -> None:
        """Before input ``value`` is written to ``key``: a drive precomputed from ``key`` as it is now
        stays valid past the write when the input holds the same values (a pattern clamped over
        several runs); otherwise the write count it waits for is not reached and it is dropped."""
        version = self._version[key]
        for name, ready in self._ready.items():
            if ready.source_key == key and ready.source_version == version:
                array = self.arrays[key]
                if (array == np.asarray(value).astype(array.dtype, copy=False)).all():
                    self._ready[name] = ready._replace(source_version=version + 1)

    def _kernels_compiled(self) -> bool:
        """Whether kernels were compiled (or loaded) since the last call: numba compiles each on its first
        call, and that time is not time spent stepping."""
        count = sum(len(dispatcher.overloads) for dispatcher in self.dispatchers())
        compiled, self._kernel_count = count != self._kernel_count, count
        return compiled

    def _stage_plan(self, stages: frozenset[str]) -> list[tuple[int, Any, tuple[str, ...]]]:
        """The entries of the step plan that belong to ``stages``, in order."""
        plan = self._stage_plans.get(stages)
        if plan is None:
            plan = self._stage_plans[stages] = [
                entry for operation, entry in zip(self.network.program, self._plan, strict=True) if operation.stage in stages
            ]
        return plan

    def run_compiled(self, first_step: int, steps: int, plastic: frozenset[str], stages: frozenset[str] | None = None) -> bool:
        """Run ``steps`` steps without inputs as one compiled call (:mod:`~plasticity.backends.numba_program`),
        the rules of ``plastic`` and the network stages in ``stages`` (None: all) running; the
        first step is step ``first_step + 1``.

        Returns False, having done nothing, when the run takes the step-by-step path: a projection
        learns whose fused pass is worth more than the program (:data:`FUSED_STEP_MIN_SYNAPSES`), or
        the program is not compiled yet and the engine has spent less than
        :data:`COMPILE_AFTER_SECONDS` in :meth:`step`.
        """
        if steps < 1 or self._fused_learning(plastic):
            return False
        if stages not in self._programs:
            if self.stepped_seconds < COMPILE_AFTER_SECONDS:
                return False
            self._programs[stages] = step_program(self.program_view(), stages)
        program = self._programs[stages]
        if program is None:
            return False
        self._ready.clear()  # a program computes its first drives itself
        before = [self._version[key] for key in program.keys]
        learn = [name in plastic for name in program.projections]
        blocks = self._trial_blocks(program, steps, plastic)
        reused, finite, after, self._drives = program.run(first_step, steps, self.dt, learn, before, self._drives, blocks)
        self.split_runs += blocks > 1
        self.cached_drives += reused
        self._version.update(zip(program.keys, after))
        if finite:  # the program checked what it wrote; else nonfinite() finds the first bad array by itself
            self._verified.update((key, new) for key, old, new in zip(program.keys, before, after) if new != old)
        self.compiled_steps += steps
        return True

    def run_presented(
        self,
        first_step: int,
        data: Mapping[str, np.ndarray],
        order: np.ndarray,
        plastic: frozenset[str],
        stages: frozenset[str] | None = None,
        counted: tuple[str, ...] = (),
        active: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Run one step per column of ``order`` (``(trials, steps)``) as one compiled call: step ``s``
        first writes item ``order[t, s]`` of ``data[key]`` (``(trials, items, *units)``, one data set
        broadcast to every trial read once; float32 read as it is, other dtypes as float64) into input ``key`` of every trial ``t``, as :meth:`step`
        does with its inputs, reading the items from the data sets themselves; the first step is
        step ``first_step + 1``.

        A program that can (:attr:`~plasticity.backends.numba_program.StepProgram.skips`: every array
        it writes is indexed by trial first and no weights are shared) leaves out the trials flagged
        False in ``active`` (a boolean per trial), their state as it was; otherwise they run with the
        others. Either way the caller puts their state back.

        Returns, per trial, the number of steps after which the weights ``counted`` (at most one
        ``"proj.w"`` key) had changed (0 for trials left out), or None, having done nothing, when the
        run takes the step-by-step path: a projection learns whose fused pass is worth more than the
        program (:data:`FUSED_STEP_MIN_SYNAPSES`), more than one key is counted, or the program is
        neither compiled nor in the disk cache and the engine has spent less than
        :data:`COMPILE_AFTER_SECONDS` in :meth:`step`.
        """
        steps = order.shape[1]
        if steps < 1 or self._fused_learning(plastic) or len(counted) > 1:
            return None
        inputs = tuple((name, np.dtype(np.float32 if data[name].dtype == np.float32 else np.float64)) for name in sorted(data))
        key = (stages, inputs, tuple(counted))
        if key not in self._programs:
            tallies = [(name, np.zeros_like(self.arrays[name]), np.zeros(self.trials, np.int64)) for name in counted]
            program = step_program(self.program_view(), stages, key[1], tallies,
                                   cached_only=self.stepped_seconds < COMPILE_AFTER_SECONDS)
            if program is False:
                return None
            self._programs[key] = program
            self._presented[key] = tallies
        program = self._programs[key]
        if program is None:
            return None
        tallies = self._presented[key]
        order = np.ascontiguousarray(order, dtype=np.int64)
        sets = []
        for name, dtype in inputs:
            items = data[name]
            if items.strides[0] == 0:  # one data set broadcast to every trial: read once
                items = items[:1]
            sets.append(np.ascontiguousarray(items, dtype=dtype).reshape(*items.shape[:2], -1))
        for name, before, counts in tallies:
            before[...] = self.arrays[name]
            counts.fill(0)
        skipping = active is not None and program.skips and not active.all()
        if skipping and not active.any():
            return np.zeros(self.trials, np.int64)
        self._ready.clear()  # a program computes its first drives itself
        before_versions = [self._version[name] for name in program.keys]
        learn = [name in plastic for name in program.projections]
        reused, finite, after, drives = program.present(first_step, order, sets, self.dt, learn, before_versions, self._drives,
                                                        active if skipping else None)
        if skipping:  # products kept for the trials left out were not made at these write counts: none is kept
            drives = [[0] * len(DRIVE_FIELDS) for _ in drives]
        self._drives = drives
        self.cached_drives += reused
        self._version.update(zip(program.keys, after))
        if finite:
            self._verified.update((name, new) for name, old, new in zip(program.keys, before_versions, after) if new != old)
        self.compiled_steps += steps
        return tallies[0][2].copy() if tallies else np.zeros(self.trials, np.int64)

    def _fused_learning(self, plastic: frozenset[str]) -> bool:
        """Whether a projection of ``plastic`` with a fused pass has :data:`FUSED_STEP_MIN_SYNAPSES` or more."""
        return any(
            self._fusion.get(name) is not None
            and self.trials * self.network.projections[name].pre.n * self.network.projections[name].post.n >= FUSED_STEP_MIN_SYNAPSES
            for name in plastic
        )

    def _trial_blocks(self, program: StepProgram, steps: int, plastic: frozenset[str]) -> int:
        """How many blocks of trials a compiled run splits into (1: none): a block per thread
        allowed, when no rule of the program runs and the run does at least ``split_min_work``
        (:data:`SPLIT_MIN_WORK` unless changed)."""
        if not program.splittable or plastic & program.learners or steps * self._step_work < self.split_min_work:
            return 1
        return min(threads(), self.trials)

    def _drive(self, name: str, assign: bool) -> None:
        """Add (``assign``: write) projection ``name``'s drive into its target.

        The product is kept as the projection's contribution and reused while neither
        source nor weights are written. A projection whose source changed at its previous
        drive too (and again now) computes straight into the target instead.
        """
        row, source_key, weights_key, contribution, shared, source, weights, target = self._contribution[name]
        state = self._drives[row]  # DRIVE_FIELDS
        ready = self._ready.pop(name, None)
        if (ready is not None and self._version[source_key] == ready.source_version
                and self._version[weights_key] == ready.weights_version):
            _accumulate(target, ready.drive, assign)
            self.fused_steps += 1
            state[6] = 1
            return
        source_version, weights_version = self._version[source_key], self._version[weights_key]
        if state[0] and state[1] == source_version and state[2] == weights_version:
            self.cached_drives += 1
            state[3], state[4], state[5], state[6] = 1, source_version, weights_version, 0
            _accumulate(target, contribution, assign)
            return
        changing = state[6] and not (state[3] and state[4] == source_version and state[5] == weights_version)
        state[3], state[4], state[5], state[6] = 1, source_version, weights_version, 1
        if changing:  # changes every step: no buffer
            state[0] = 0
            if shared:
                gemm(1.0, source, weights.T, 0.0 if assign else 1.0, target)
            else:
                if assign:
                    target.fill(0.0)
                _matvec(weights, source, target, False)
            return
        if shared:
            gemm(1.0, source, weights.T, 0.0, contribution)
        else:
            contribution.fill(0.0)
            _matvec(weights, source, contribution, False)
        state[0], state[1], state[2] = 1, source_version, weights_version
        _accumulate(target, contribution, assign)

    def _feedback(self, name: str, assign: bool) -> None:
        shared, weights, source, target = self._feedbacks[name]
        if shared:
            gemm(1.0, source, weights, 0.0 if assign else 1.0, target)
        else:
            if assign:
                target.fill(0.0)
            _matvec(weights, source, target, True)

    def _plasticity_step(self, name: str, t: float, next_inputs: Mapping[str, np.ndarray] | None) -> None:
        """Run the rule of projection ``name``; with a fused pass, precompute the next drive from the
        next step's input to the source if there is one, else from the source as it is (see the
        module's docstring). Called before the step counts the writes (the weights' count goes up by one)."""
        kernel, fixed, (xn, drive, changed), arrays, _ = self._plasticity[name]
        mode = self._fusion[name]
        fuse = mode is not None
        self._ready.pop(name, None)
        if fuse:
            slot = self._contribution[name]
            key, source_version = slot.source_key, self._version[slot.source_key]
            if mode and next_inputs is not None and key in next_inputs:
                xn[...] = next_inputs[key]
                source_version += 1  # the next step writes it first
            else:
                xn = self.arrays[key]
        kernel(t, self.dt, *fixed, fuse, xn, drive, False, changed, *arrays)
        if fuse:
            weights_version = self._version[slot.weights_key] + 1
            self._ready[name] = _Ready(drive, key, source_version, slot.weights_key, weights_version)
            self._proofs[slot.weights_key] = (drive, weights_version)


def build(network: Network, state: Mapping[str, np.ndarray], *, trials: int, dtype: str, dt: float, device: str | None = None) -> NumbaEngine:
    """A numba engine for ``network`` starting from ``state``."""
    return NumbaEngine(network, state, trials=trials, dtype=dtype, dt=dt)

"""Compiled step programs: a run of steps without inputs or recording as one compiled call.

Inference in a predictive coding network, a relaxation or a recall phase runs many short
steps. Dispatching each stage from Python costs about as much as the stage itself at the
sizes such phases often use (microseconds of Python around kernels of a few to a hundred
microseconds), so the numba engine also writes the whole step program, looped over the
steps of a run, as one generated function: the population kernels and the plasticity
kernels of the projections that learn (an array of flags, so one program serves every
choice of ``plastic``) called in order, every product a BLAS call made from compiled code
(:func:`~plasticity.backends.blas.gemm` into a preallocated output), summed inputs reset and
accumulated in place (the helpers of :mod:`plasticity.backends.numba_kernels`). It keeps the
engine's write counters and reuses a drive while neither its source nor its weights were written, as
:meth:`~plasticity.backends.numba_backend.NumbaEngine.step` does. Unit stages of a population
are fused into one pass where the dependencies allow (:func:`fuse_stages`), and a summed input
whose drives all reuse their products is left as the step before made it (:func:`_kept_sums`).
A program sees the engine only through an :class:`EngineView` (its network, arrays, write-count
keys, drive, feedback and plasticity slots, step plan and which arrays are indexed by trial
first), which
:meth:`~plasticity.backends.numba_backend.NumbaEngine.program_view` provides.
Without learning the state after a compiled run is exactly what the same steps taken one by
one leave (to rounding when its trials are split, below); with learning, a projection with
separate weights per trial does not precompute its next drive inside its update (the
step-by-step path may), so drives are summed in another order (equal to rounding).

Trials in blocks. While no rule runs, every trial's steps read and write only that trial's rows
(the weights are read, not written), so a run without learning splits the trials into
contiguous blocks run at once, a thread each, every block with its kernels serial and its
products on one BLAS thread (:data:`~plasticity.backends.numba_backend.SPLIT_MIN_WORK` says from
which size). The threads then work from the first step to the last without waiting for each
other, where splitting each product and pass over both threads makes them meet several times a
step, and a product of a few hundred thousand multiply-adds gains little from a second thread
(pc training: ``benchmarks/README.md``). The
results equal the unsplit run's to rounding: BLAS may sum a row of a product in another order
when it computes fewer rows at once (a block of one row took another path; blocks of 64 rows
left every value of the benchmark's run unchanged). The blocks run on the threads of numba's
threading layer, which MKL shares: threads of another pool would compete with its workers,
which keep spinning for milliseconds after each threaded product (a pool of Python threads ran
slower than no split). For that, the program is compiled as a C-callable function of fixed
signature, ``run_block(block, blocks, table)``, that finds its arrays from their addresses in
``table``: one generic launcher (:func:`~plasticity.backends.numba_kernels.run_in_blocks`,
compiled once) calls it on every thread, where a parallel loop generated per program took
much longer to compile than the program itself.

The source is written to the kernel cache beside the network's kernels (``<cache>/k<hash>.py``)
and compiled with ``cache=True``: a second process loads the machine code. Compiling takes
seconds per network, so an engine compiles its program only once it has spent
:data:`~plasticity.backends.numba_backend.COMPILE_AFTER_SECONDS` stepping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numba
import numpy as np

from plasticity.backends.blas import THREADS_PER_CALL
from plasticity.backends.numba_cache import is_cached, load_module
from plasticity.backends.numba_kernels import run_alone, run_in_blocks, run_serially
from plasticity.backends.numba_source import Lines
from plasticity.backends.numba_units import population_kernel
from plasticity.equations import Name, walk
from plasticity.network import Network

__all__ = [
    "DRIVE_FIELDS",
    "DriveSlot",
    "FeedbackSlot",
    "PlasticityCall",
    "EngineView",
    "StepProgram",
    "fuse_stages",
    "step_program",
]

#: Entries of a step program's table: the run's first step and step count, the addresses of the
#: time step, learn flags, write counts, drive tables, results and trial ranges of the blocks
#: (:class:`_Buffers`), then of every parameter vector and array the program reads.
_FIRST, _STEPS, _DT, _LEARN, _VERSIONS, _DRIVES, _RESULTS, _RANGES, _ARGUMENTS = range(9)

#: Columns of the engine's drive-cache table (a list of rows for steps taken one by one, passed to a
#: program as one int array), one row per projection:
#: whether a stamp is held, the (source, weights) write counts it was computed at, whether the
#: previous drive's counts are held, those counts, and whether the previous drive recomputed.
DRIVE_FIELDS = ("stamped", "stamp_source", "stamp_weights", "seen", "seen_source", "seen_weights", "missed")


class DriveSlot(NamedTuple):
    """What a projection's drive reads and writes: its row of the drive table, the keys of its source
    and weights, the kept product (its contribution), whether the weights are shared, and the arrays."""

    row: int
    source_key: str
    weights_key: str
    contribution: np.ndarray
    shared: bool
    source: np.ndarray
    weights: np.ndarray
    target: np.ndarray


class FeedbackSlot(NamedTuple):
    """What a projection's feedback ``target += W.T @ source`` reads and writes."""

    shared: bool
    weights: np.ndarray
    source: np.ndarray
    target: np.ndarray


class PlasticityCall(NamedTuple):
    """How a projection's plasticity kernel is called: the kernel, its fixed arguments (parameter
    vector, trials, post and pre sizes), its scratch for a precomputed drive (next source, drive)
    and for marking the trials whose weights changed (int64 per trial), the arrays it reads and
    writes (state, then buffers), and whether it can mark changes (``KernelSpec.counts``)."""

    kernel: Any
    fixed: tuple[np.ndarray, int, int, int]
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray]
    arrays: list[np.ndarray]
    counts: bool


#: An entry of an engine's step plan, one per operation of the network's program: (operation
#: code, what it runs on, keys it writes). What it runs on, by the operation's kind: ``reset``
#: the arrays to zero; ``units`` (kernel, parameter vector, state arrays); ``drive`` and
#: ``feedback`` (projection, whether the product assigns instead of adding); ``plasticity``
#: the projection.
PlanEntry = tuple[int, Any, tuple[str, ...]]


@dataclass(frozen=True)
class EngineView:
    """What a step program needs of the engine it runs for
    (:meth:`~plasticity.backends.numba_backend.NumbaEngine.program_view`): the network, its sizes
    and arrays (which never move), the state keys in the order of the engine's write counts, the
    drives by projection in the order of their rows of the drive table, the feedback products and
    plasticity calls by projection, the step plan, the name of the generated kernels' module and
    the ids of the arrays indexed by trial first (population state, drive products, and every array
    and scratch buffer of a projection with weights per trial but its mask)."""

    network: Network
    trials: int
    dtype: np.dtype
    arrays: Mapping[str, np.ndarray]
    keys: tuple[str, ...]
    drives: Mapping[str, DriveSlot]
    feedbacks: Mapping[str, FeedbackSlot]
    plasticity: Mapping[str, PlasticityCall]
    plan: Sequence[PlanEntry]
    kernels_module: str
    trial_first: frozenset[int]


@dataclass
class StepProgram:
    """A generated step program, compiled as a C-callable function, and what it runs on.

    ``function`` is ``run_block(block, blocks, table)``: ``table`` (``int64``) holds the run's
    first step and step count, then the addresses of the arrays it reads, made into arrays again
    in the compiled code (the engine's arrays never move). It runs the steps on block ``block``
    of ``blocks`` contiguous blocks of the trials, with the block's own write counts and drive
    table; :meth:`run` fills the table and calls it (see :func:`step_program`).

    ``keys`` are the state keys whose write counts the program keeps, ``projections`` those
    whose drive-table rows and learn flags it takes, ``params`` and ``arrays`` what it runs on
    (of ``trials`` trials),
    ``fused`` the (population, stages) run as one kernel, ``written`` the keys it may write,
    ``kept`` the summed inputs left as they are while their drives reuse their products
    (:func:`_kept_sums`), ``learners`` the projections whose rules it runs, ``splittable``
    whether a run in which none of them learns may split its trials into blocks.

    A program for presented data (:func:`step_program` with ``inputs``) reads its items from the
    data sets themselves: ``presented`` is the table entry where the address of the order of the
    items comes, then for each of ``inputs`` (keys) its data set's address, trials and items
    (``-1``: none). ``skips``: whether a run may leave trials out, running each run of consecutive
    trials to keep as a block of its own (:func:`~plasticity.backends.numba_kernels.run_serially`):
    every array a step writes, rules included, is indexed by trial first and no weights are shared.
    """

    function: Any
    keys: list[str]
    projections: list[str]
    params: list[np.ndarray]
    arrays: list[np.ndarray]
    fused: list[tuple[str, tuple[str, ...]]]
    written: list[str]
    kept: list[str]
    learners: frozenset[str]
    splittable: bool
    table: np.ndarray
    buffers: _Buffers
    inputs: list[str]
    presented: int
    skips: bool
    trials: int

    def run(self, first: int, steps: int, dt: float, learn: list[bool], versions: list[int], drives: list[list[int]],
            blocks: int = 1) -> tuple[int, bool, list[int], list[list[int]]]:
        """Run ``steps`` steps (the first at time ``(first + 1) * dt``), the rules of the projections
        flagged in ``learn`` running, on ``blocks`` blocks of the trials at once (one per thread,
        each with one thread; ``blocks > 1`` only when nothing learns and ``splittable``), from the
        write counts ``versions`` of ``keys`` and the drive table ``drives``.

        Returns the number of drives reused (by one block: all reuse alike), whether every array
        the run wrote (of ``written``, those whose write count changed) is finite, and the write
        counts and drive table after the run.
        """
        self._start(first, steps, dt, learn, versions, drives, blocks)
        if blocks > 1:
            run_in_blocks(self.function.address, blocks, self.table)
        else:
            run_alone(self.function.address, self.table)
        return self._results(blocks)

    def present(self, first: int, order: np.ndarray, data: Sequence[np.ndarray], dt: float, learn: list[bool],
                versions: list[int], drives: list[list[int]], active: np.ndarray | None = None) -> tuple[int, bool, list[int], list[list[int]]]:
        """Run one step per column of ``order`` (``(trials, steps)``, int64, C-contiguous): step ``s``
        first writes item ``order[t, s]`` of ``data[k]`` (``(trials or 1, items, units)``, of the dtype
        the program was made for, C-contiguous) into input ``inputs[k]`` of trial ``t``, as :meth:`run` runs its steps.
        ``active`` (a flag per trial, at least one set; only when ``skips``): run only the trials
        flagged, each run of consecutive ones a block, the others left as they are. Returns what
        :meth:`run` does.
        """
        table, offset = self.table, self.presented
        table[offset] = order.ctypes.data
        for k, array in enumerate(data):
            table[offset + 1 + 3 * k : offset + 4 + 3 * k] = array.ctypes.data, array.shape[0], array.shape[1]
        if active is None or active.all():
            self._start(first, order.shape[1], dt, learn, versions, drives, 1)
            run_alone(self.function.address, table)
            return self._results(1)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], active, [False]]).astype(np.int8)))
        ranges = edges.reshape(-1, 2)  # (low, high) of every run of consecutive active trials
        self._start(first, order.shape[1], dt, learn, versions, drives, len(ranges), ranges)
        run_serially(self.function.address, len(ranges), table)
        return self._results(len(ranges))

    def _start(self, first: int, steps: int, dt: float, learn: list[bool], versions: list[int], drives: list[list[int]],
               blocks: int, ranges: np.ndarray | None = None) -> None:
        """Fill the table and buffers for a run of ``blocks`` blocks, of the trial ranges ``ranges``
        (``(blocks, 2)``: low, high) or else of equal size."""
        buffers, table = self.buffers, self.table
        table[_FIRST], table[_STEPS] = first, steps
        buffers.dt[0] = dt
        buffers.learn[:] = learn
        buffers.versions[:blocks] = versions
        buffers.drives[:blocks] = drives
        if ranges is None:
            trials = self.trials
            ranges = [[trials * block // blocks, trials * (block + 1) // blocks] for block in range(blocks)]
        buffers.ranges[:blocks] = ranges

    def _results(self, blocks: int) -> tuple[int, bool, list[int], list[list[int]]]:
        """What :meth:`run` returns, from the first of ``blocks`` blocks (all count and reuse alike)
        and whether all found what they wrote finite."""
        buffers = self.buffers
        results = buffers.results[:blocks]
        return int(results[0, 0]), bool(results[:, 1].all()), buffers.versions[0].tolist(), buffers.drives[0].tolist()


@dataclass
class _Buffers:
    """What a step program reads and writes besides the engine's arrays: the time step, learn
    flags, and per block the write counts, drive table, results (drives reused, finite) and the
    range of trials it runs (low, high)."""

    dt: np.ndarray
    learn: np.ndarray
    versions: np.ndarray
    drives: np.ndarray
    results: np.ndarray
    ranges: np.ndarray

    @classmethod
    def sized(cls, blocks: int, keys: int, projections: int) -> "_Buffers":
        return cls(np.zeros(1), np.zeros(projections, np.int64), np.zeros((blocks, keys), np.int64),
                   np.zeros((blocks, projections, len(DRIVE_FIELDS)), np.int64), np.zeros((blocks, 2), np.int64),
                   np.zeros((blocks, 2), np.int64))

    def addresses(self) -> list[int]:
        """In the order of the table's entries ``_DT`` to ``_RANGES``."""
        return [array.ctypes.data for array in (self.dt, self.learn, self.versions, self.drives, self.results, self.ranges)]


class _Arguments:
    """Names (``prefix`` and a number) for the arrays a program is passed, each passed once."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.arrays: list[np.ndarray] = []
        self._names: dict[int, str] = {}

    def __call__(self, array: np.ndarray) -> str:
        name = self._names.get(id(array))
        if name is None:
            name = self._names[id(array)] = f"{self.prefix}{len(self.arrays)}"
            self.arrays.append(array)
        return name


@dataclass
class _Operation:
    """One entry of the step program with the state keys it reads and writes (for reordering).

    ``stages`` are the population stages a unit operation runs, in order (several once fused).
    """

    kind: str  # of the network's program: "reset", "units", "drive", "feedback" or "plasticity"
    payload: Any
    writes: tuple[str, ...]
    reads: frozenset[str]
    population: str | None = None
    stages: tuple[str, ...] = ()

    def conflicts(self, later: "_Operation") -> bool:
        """Whether ``later`` must stay after this operation (one writes what the other reads or writes)."""
        written, later_written = set(self.writes), set(later.writes)
        return bool(written & (later.reads | later_written) or self.reads & later_written)


def _operations(engine: EngineView, stages: frozenset[str] | None = None) -> list[_Operation]:
    """The engine's plan (its entries in ``stages``; None: all) with read sets: unit variables named
    in the equations, a product's source, weights (and target when it accumulates), a rule's unit
    reads and its projection's variables."""
    network = engine.network
    found = []
    for operation, (_, payload, writes) in zip(network.program, engine.plan, strict=True):
        if stages is not None and operation.stage not in stages:
            continue
        kind, reads = operation.kind, set()
        if kind == "units":
            population = operation.population
            for equation in network.populations[population].stages[operation.stage]:
                reads.update(f"{population}.{node.var}" for node in walk(equation.expr) if isinstance(node, Name) and node.kind == "unit")
                if equation.op != "=":
                    reads.add(f"{population}.{equation.var}")
            found.append(_Operation(kind, payload, writes, frozenset(reads), population, (operation.stage,)))
            continue
        if kind in ("drive", "feedback"):
            name, assign = payload
            projection = network.projections[name]
            reads.add(f"{name}.w")
            reads.add(f"{projection.pre.name}.{projection.source}" if kind == "drive" else f"{projection.post.name}.{projection.feedback[0]}")
            if not assign:
                reads.update(writes)
        elif kind == "plasticity":
            projection = network.projections[payload]
            reads.update(key for key in engine.arrays if key.split(".", 1)[0] == payload)
            for side, population in (("pre", projection.pre), ("post", projection.post)):
                reads.update(f"{population.name}.{var}" for var in projection.rule.unit_reads(side))
        found.append(_Operation(kind, payload, writes, frozenset(reads)))
    return found


def fuse_stages(operations: list[_Operation]) -> list[_Operation]:
    """Bring unit stages of one population together and fuse them into one operation wherever the
    dependencies allow (one pass over the units instead of several).

    For consecutive unit operations ``A`` and ``B`` of a population, the operations between them
    that depend on ``A`` (transitively) move after ``B`` and the rest before ``A``; this is
    possible unless one of them also leads to ``B``. Every pair of operations that conflict keeps
    its order, so the step computes what it computed.
    """
    operations = list(operations)
    fused = True
    while fused:
        fused = False
        for position in reversed(range(len(operations))):  # later pairs first: a stage joins the one after it
            first = operations[position]
            if first.population is None:
                continue
            later = next((k for k in range(position + 1, len(operations)) if operations[k].population == first.population), None)
            if later is None:
                continue
            window, second = operations[position + 1 : later], operations[later]
            after: list[int] = []
            for k, operation in enumerate(window):
                if first.conflicts(operation) or any(window[j].conflicts(operation) for j in after):
                    after.append(k)
            before: set[int] = set()
            for k in reversed(range(len(window))):
                if window[k].conflicts(second) or any(window[k].conflicts(window[j]) for j in before):
                    before.add(k)
            if before.intersection(after):
                continue
            merged = _Operation(
                first.kind, first.payload, tuple(dict.fromkeys(first.writes + second.writes)), first.reads | second.reads,
                first.population, first.stages + second.stages,
            )
            operations[position : later + 1] = (
                [op for k, op in enumerate(window) if k not in after] + [merged] + [window[k] for k in after]
            )
            fused = True
            break
    return operations


def _cross_step(operations: list[_Operation], network: Network) -> dict[str, tuple[int, int]]:
    """Populations whose first unit operation of a step can join their last one of the step before:
    population -> (index of the first, index of the last).

    That first operation then runs at the end of the previous step, fused, for every step but
    the first of a run (and the last keeps its operation unfused, so that a run ends in the state
    the same steps taken one by one leave). Allowed when it conflicts with none of the
    operations after the last or before itself, and neither reads the time, which differs by a step.
    """
    found = {}
    for population in {op.population for op in operations if op.population is not None}:
        where = [k for k, op in enumerate(operations) if op.population == population]
        first, last = where[0], where[-1]
        moved = operations[first]
        if first == last or any(
            moved.conflicts(other) or other.conflicts(moved) for other in operations[last + 1 :] + operations[:first]
        ):
            continue
        stages = operations[first].stages + operations[last].stages
        equations = [eq for stage in stages for eq in network.populations[population].stages[stage]]
        if any(isinstance(node, Name) and node.kind == "time" for eq in equations for node in walk(eq.expr)):
            continue
        found[population] = (first, last)
    return found


def _kept_sums(operations: list[_Operation], arrays: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Summed inputs a step of a compiled run may leave as they are: target key -> positions of the
    drives that make it, the first assigning.

    A summed input qualifies when nothing but those drives writes it (a reset may count it as
    written without zeroing it, its first drive assigning instead) and nothing between its first
    and last drive reads it or writes what those drives read. After the first step of a run it
    then holds what its drives made in the step before, so when every one of them would reuse its
    product it already holds the sum they would make again: the program keeps it (and counts the
    reuses), where a step taken alone copies and adds the same products (a clamped layer's drive
    and bias: two passes per step).
    """
    found = {}
    for position, operation in enumerate(operations):
        if operation.kind != "drive" or not operation.payload[1]:
            continue
        (target,) = operation.writes
        writers = [k for k, other in enumerate(operations) if target in other.writes]
        group = [k for k in writers if not (operations[k].kind == "reset" and all(a is not arrays[target] for a in operations[k].payload))]
        if group[0] != position or any(operations[k].kind != "drive" for k in group):
            continue
        reads = frozenset().union(*(operations[k].reads for k in group)) - {target}
        between = operations[group[0] + 1 : group[-1]]
        if all(other.kind == "drive" and target not in other.reads and not reads & set(other.writes) for other in between):
            found[target] = group
    return found


class _ProgramWriter:
    """The source of one step program (see :func:`step_program`)."""

    def __init__(self, engine: EngineView):
        self.engine = engine
        self.keys = list(engine.keys)
        self.index = {key: position for position, key in enumerate(self.keys)}
        self.projections = list(engine.drives)  # in the order of their rows of the drive table
        self.row = {name: slot.row for name, slot in engine.drives.items()}
        self.arguments = _Arguments("a")
        self.params = _Arguments("p")  # parameter vectors of the kernels
        self.kernels: set[str] = {"tanh32"}  # the network's generated functions the program calls
        self.fused: dict[tuple[str, tuple[str, ...]], str] = {}  # (population, stages) -> fused kernel
        self.fused_text: list[str] = []
        self.body = Lines()
        self.body.depth = 2

    def versions(self, writes: tuple[str, ...]) -> None:
        for key in writes:
            self.body(f"versions[{self.index[key]}] += 1")

    def units(self, operation: _Operation, stages: tuple[str, ...] | None = None, writes: tuple[str, ...] = ()) -> None:
        """Call the kernel of ``stages`` (default the operation's) of the operation's population."""
        function, values, state = operation.payload
        stages = operation.stages if stages is None else stages
        if len(stages) == 1:
            name = function.py_func.__name__
            self.kernels.add(name)
        else:
            name = self.fused.get((operation.population, stages))
            if name is None:
                name = self.fused[(operation.population, stages)] = f"fused_{len(self.fused)}"
                population = self.engine.network.populations[operation.population]
                equations = [eq for stage in stages for eq in population.stages[stage]]
                _, text = population_kernel(
                    self.engine.network, operation.population, " + ".join(stages), equations, name,
                    self.engine.trials, f"np.{self.engine.dtype.name}",
                )
                self.fused_text.append(text)
        self.body(f"{name}(t, dt, {self.params(values)}, {', '.join(self.arguments(a) for a in state)})")
        self.versions(writes or operation.writes)


def step_program(
    engine: EngineView,
    stages: frozenset[str] | None = None,
    inputs: Sequence[tuple[str, np.dtype]] = (),
    counted: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
    cached_only: bool = False,
) -> StepProgram | None | bool:
    """The compiled step program of the engine ``engine`` views (its plan, arrays and drive caches).
    Unit stages are fused where :func:`fuse_stages` can, and across steps where :func:`_cross_step` can.

    ``inputs`` (state key, dtype of its data set) make a program for presented data
    (:meth:`StepProgram.present`): step ``s`` first copies into each of them its trial's item of
    column ``s`` of the order, from the data set itself (:func:`~plasticity.backends.numba_kernels._copy_items`, as a step taken alone
    sets its inputs), and no unit stage moves across steps. ``counted`` (weights key, a copy of the
    weights, counts per trial) adds 1 to a trial's count after every step that changed its
    weights: marked by the rule's kernel as it writes them where it can (:func:`_marked`), else
    found by comparing them with the copy, kept current (:func:`~plasticity.backends.numba_kernels._count_changes`).
    Such a program never splits its trials into blocks run at once, but may leave trials out
    (``skips``).

    ``None`` when the step has nothing to run; ``False`` when ``cached_only`` and the program's
    machine code is not in the disk cache (so it would compile now).
    """
    writer = _ProgramWriter(engine)
    body, arguments, index, row = writer.body, writer.arguments, writer.index, writer.row
    operations = fuse_stages(_operations(engine, stages))
    cross = _cross_step(operations, engine.network) if not inputs else {}
    for number, (key, _) in enumerate(inputs):
        body(f"_copy_items({arguments(engine.arrays[key])}, d{number}, order, s, low)  # input {key}")
        writer.versions((key,))
    marked = _marked(engine, operations, counted)
    firsts = {first: last for first, last in cross.values()}
    lasts = {last: first for first, last in cross.values()}
    kept = _kept_sums(operations, engine.arrays)
    kept_at = {k: (number, target) for number, (target, group) in enumerate(kept.items()) for k in group}
    for position, operation in enumerate(operations):
        kind, payload, writes = operation.kind, operation.payload, operation.writes
        if kind == "reset":
            for array in payload:
                body(f"_fill_zero({arguments(array)})")
        elif kind == "units" and position in firsts:  # later steps ran it at the end of the step before
            body("if s == 0:")
            body.indent()
            writer.units(operation)
            body.dedent()
            continue
        elif kind == "units" and position in lasts:
            following = operations[lasts[position]]
            body("if s + 1 < steps:  # and the first stage of the next step")
            body.indent()
            writer.units(operation, operation.stages + following.stages, tuple(dict.fromkeys(writes + following.writes)))
            body.dedent()
            body("else:")
            body.indent()
            writer.units(operation)
            body.dedent()
            continue
        elif kind == "units":
            writer.units(operation)
            continue
        elif kind == "drive" and position in kept_at:
            number, target = kept_at[position]
            if position == kept[target][0]:
                slots = [engine.drives[operations[k].payload[0]] for k in kept[target]]
                stamps = " and ".join(
                    f"_stamped(drives, {slot.row}, versions[{index[slot.source_key]}], versions[{index[slot.weights_key]}])"
                    for slot in slots
                )
                body(f"keep{number} = s > 0 and {stamps}  # {target} made by reused products in the step before")
            _emit_drive(body, engine, *payload, f"keep{number}", index, arguments)
        elif kind == "drive":
            _emit_drive(body, engine, *payload, "False", index, arguments)
        elif kind == "feedback":
            _emit_feedback(body, engine, *payload, arguments)
        else:
            kernel, (values, *sizes), (xn, next_drive, changed), state, _ = engine.plasticity[payload]
            name = kernel.py_func.__name__
            writer.kernels.add(name)
            body(f"if learn[{row[payload]}]:  # {payload}")
            body.indent()
            trials = "high - low" if not engine.network.projections[payload].shared else str(sizes[0])  # a block's trials
            passed = [writer.params(values), trials, *map(str, sizes[1:]), "False", arguments(xn), arguments(next_drive),
                      str(payload in marked), arguments(changed), *map(arguments, state)]
            body(f"{name}(t, dt, {', '.join(passed)})")
            writer.versions(writes)
            body.dedent()
            continue
        writer.versions(writes)
    for key, before, counts in counted:
        projection = key.split(".", 1)[0]
        if projection in marked:
            changed = engine.plasticity[projection].scratch[2]
            body(f"_add_marks({arguments(changed)}, {arguments(counts)})  # updates of {key}, marked by its rule")
        else:
            body(f"_count_changes({arguments(engine.arrays[key])}, {arguments(before)}, {arguments(counts)})  # updates of {key}")
    if not body.lines:
        return None
    lines = Lines()
    lines("import sys")
    lines("")
    lines("import numba")
    lines("import numpy as np")
    lines("")
    lines("from numba import types")
    lines("")
    lines("from plasticity.backends.blas import one_thread, threads, threads_back")
    lines("from plasticity.backends.numba_kernels import (")
    lines("    _add_marks, _all_finite, _copy_items, _count_changes, _drive, _feedback, _fill_zero, _pointer, _stamped,")
    lines(")")
    lines("")
    lines(f"kernels = sys.modules[{engine.kernels_module!r}]")
    for name in sorted(writer.kernels):
        lines(f"{name} = kernels.{name}")
    lines("")
    lines("")
    for text in writer.fused_text:
        lines.lines.extend(text.splitlines())
        lines("")
        lines("")
    written = list(dict.fromkeys(key for operation in operations for key in operation.writes))
    checked = [(index[key], arguments(engine.arrays[key])) for key in written]
    params, arrays = writer.params.arrays, arguments.arrays
    per_trial = set(engine.trial_first) | {id(array) for _, before, counts in counted for array in (before, counts)}
    trials, keys, rows = engine.trials, len(writer.keys), len(writer.projections)
    lines("@numba.cfunc(types.void(types.int64, types.int64, types.CPointer(types.int64)), cache=True, error_model='numpy')")
    lines("def run_block(block, blocks, table):")
    lines.indent()
    lines("count = one_thread() if blocks > 1 else 0  # a block per thread: the thread's kernels and products serial")
    lines(f"block_range = numba.carray(_pointer(table[{_RANGES}] + 16 * block, np.int64), 2)")
    lines("low, high = block_range[0], block_range[1]")
    lines(f"first, steps = table[{_FIRST}], table[{_STEPS}]")
    lines(f"dt = numba.carray(_pointer(table[{_DT}], np.float64), 1)[0]")
    lines(f"learn = numba.carray(_pointer(table[{_LEARN}], np.int64), {rows})")
    lines(f"versions = numba.carray(_pointer(table[{_VERSIONS}] + {8 * keys} * block, np.int64), {keys})")
    lines(f"drives = numba.carray(_pointer(table[{_DRIVES}] + {8 * rows * len(DRIVE_FIELDS)} * block, np.int64), ({rows}, {len(DRIVE_FIELDS)}))")
    for k, array in enumerate(params + arrays):
        name = f"p{k}" if k < len(params) else f"a{k - len(params)}"
        if not array.flags.c_contiguous:  # rebuilt from its address and shape alone
            raise AssertionError(f"step program argument {name} is not C-contiguous")
        rows_of_block = "[low:high]" if k >= len(params) and id(array) in per_trial else ""
        lines(f"{name} = numba.carray(_pointer(table[{_ARGUMENTS + k}], np.{array.dtype.name}), {tuple(array.shape)}){rows_of_block}")
    presented = _ARGUMENTS + len(params) + len(arrays)
    if inputs:
        lines(f"order = numba.carray(_pointer(table[{presented}], np.int64), ({trials}, steps))")
    for number, (key, dtype) in enumerate(inputs):
        entry, units = presented + 1 + 3 * number, int(np.prod(engine.arrays[key].shape[1:]))
        lines(f"d{number} = numba.carray(_pointer(table[{entry}], np.{np.dtype(dtype).name}), (table[{entry + 1}], table[{entry + 2}], {units}))")
    lines("reused = 0")
    lines("initial = versions.copy()")
    lines("for s in range(steps):")
    lines.indent()
    lines("t = (first + s + 1) * dt")
    lines.lines.extend(body.lines)
    lines.dedent()
    lines("finite = True")
    for position, name in checked:  # only what this run wrote: a run without learning reads the weights but leaves them
        lines(f"if finite and versions[{position}] != initial[{position}]:")
        lines(f"    finite = _all_finite({name}.reshape(-1))")
    lines(f"results = numba.carray(_pointer(table[{_RESULTS}] + 16 * block, np.int64), 2)")
    lines("results[0] = reused")
    lines("results[1] = finite")
    lines("if blocks > 1:")
    lines("    threads_back(count)")
    if cached_only and not is_cached(lines.text()):
        return False
    module = load_module(lines.text())
    learners = frozenset(operation.payload for operation in operations if operation.kind == "plasticity")
    skips = bool(inputs) and _skips(engine, operations, per_trial)
    buffers = _Buffers.sized((trials + 1) // 2 if skips else max(1, min(numba.config.NUMBA_NUM_THREADS, trials)), keys, rows)
    entries = [0, 0, *buffers.addresses(), *(array.ctypes.data for array in params + arrays)]
    table = np.array(entries + [-1] * ((1 + 3 * len(inputs)) if inputs else 0), dtype=np.int64)
    splittable = not inputs and not counted and _splittable(engine, operations, per_trial)
    return StepProgram(
        module.run_block, writer.keys, writer.projections, params, arrays, list(writer.fused), written, list(kept),
        learners, splittable, table, buffers, [key for key, _ in inputs], presented if inputs else -1, skips, trials,
    )


def _marked(engine: EngineView, operations: list[_Operation], counted: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> set[str]:
    """The projections whose counted weights (``counted``) their rule's kernel marks when it changes
    them (:attr:`PlasticityCall.counts`), instead of a comparison of every weight with a copy made
    before the step: the rule's pass is the step's only write of the weights, so a weight it left
    equal to its old value is one the step left so (the same count, 2.2 of 12 us a step for 50
    trials x 200 synapses saved)."""
    found = set()
    for key, _, _ in counted:
        projection, writers = key.split(".", 1)[0], [operation for operation in operations if key in operation.writes]
        call = engine.plasticity.get(projection)
        if (call is not None and call.counts and len(writers) == 1 and writers[0].kind == "plasticity"
                and writers[0].payload == projection):
            found.add(projection)
    return found


def _skips(engine: EngineView, operations: list[_Operation], per_trial: set[int]) -> bool:
    """Whether a program may leave trials out, running blocks of the others, with the results of a
    run of all trials at once: every array its steps write (rules included) is indexed by trial
    first, and no projection has shared weights (whose update mixes the trials, and whose products
    BLAS may sum in another order for fewer rows)."""
    if any(slot.shared for slot in engine.drives.values()):
        return False
    written = [engine.arrays[key] for operation in operations for key in operation.writes]
    return all(id(array) in per_trial for array in written + [slot.contribution for slot in engine.drives.values()])


def _splittable(engine: EngineView, operations: list[_Operation], per_trial: set[int]) -> bool:
    """Whether a run in which no rule runs may split its trials into blocks run at once on threads
    of their own: with two trials or more, BLAS products that take the calling thread's thread
    count, and every array the steps write indexed by trial first (each trial's steps then read
    and write only its own rows)."""
    if engine.trials < 2 or not THREADS_PER_CALL:
        return False
    written = {key for operation in operations if operation.kind != "plasticity" for key in operation.writes}
    arrays = [engine.arrays[key] for key in written] + [slot.contribution for slot in engine.drives.values()]
    return all(id(array) in per_trial for array in arrays)


def _emit_drive(body: Lines, engine: EngineView, name: str, assign: bool, kept: str, index: dict, arguments: _Arguments) -> None:
    """A call of :func:`~plasticity.backends.numba_kernels._drive` for projection ``name``; ``kept``:
    the expression saying that the target already holds its sum (see :func:`_kept_sums`)."""
    slot = engine.drives[name]
    passed = [arguments(slot.source), arguments(slot.weights), arguments(slot.target), arguments(slot.contribution)]
    body(f"reused += _drive(drives, {slot.row}, versions[{index[slot.source_key]}], versions[{index[slot.weights_key]}], "
         f"{assign}, {kept}, {', '.join(passed)})  # drive {name}")


def _emit_feedback(body: Lines, engine: EngineView, name: str, assign: bool, arguments: _Arguments) -> None:
    """A call of :func:`~plasticity.backends.numba_kernels._feedback` for projection ``name``."""
    _, weights, source, target = engine.feedbacks[name]
    passed = [arguments(weights), arguments(source), arguments(target)]
    body(f"_feedback({assign}, {', '.join(passed)})  # feedback {name}")

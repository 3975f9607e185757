"""Compiled step programs: a run of steps without inputs or recording as one numba call.

Inference in a predictive coding network, a relaxation or a recall phase runs many short
steps. Dispatching each stage from Python costs about as much as the stage itself at the
sizes such phases often use (each stage call ~5-25 us of Python around kernels of a few to
a hundred us), so the numba engine also writes the whole step program, looped over the
steps of a run, as one generated function: the population kernels and the plasticity
kernels of the projections that learn (an array of flags, so one program serves every
choice of ``plastic``) called in order, every product a BLAS call made from compiled code
(``np.dot`` into a preallocated output), summed inputs reset and accumulated in place. It
keeps the engine's write counters and reuses a drive while neither its source nor its
weights were written, as :meth:`~plasticity.backends.numba_backend.NumbaEngine.step` does.
Without learning the state after a compiled run is exactly what the same steps taken one by
one leave; with learning, a projection with separate weights per trial does not precompute
its next drive inside its update (the step-by-step path may), so drives are summed in
another order (equal to rounding).

The source is written to the kernel cache beside the network's kernels (``<cache>/k<hash>.py``)
and compiled with ``cache=True``: a second process loads the machine code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plasticity.backends.numba_codegen import _Lines, load_module

__all__ = ["DRIVE_FIELDS", "StepProgram", "step_program"]

#: Columns of the drive-cache table passed to the program, one row per projection:
#: whether a stamp is held, the (source, weights) write counts it was computed at, whether the
#: previous drive's counts are held, those counts, and whether the previous drive recomputed.
DRIVE_FIELDS = ("stamped", "stamp_source", "stamp_weights", "seen", "seen_source", "seen_weights", "missed")


@dataclass
class StepProgram:
    """A generated run function and what to pass it.

    ``function(first, steps, dt, learn, versions, drives, *params, *arrays)`` runs ``steps``
    steps (the first at time ``(first + 1) * dt``) and returns the number of drives reused.
    ``learn`` flags (1 or 0) the projections in ``projections`` whose rules run, ``versions``
    holds the write count of every key in ``keys``, ``drives`` the drive-cache table
    (:data:`DRIVE_FIELDS`) of every projection; both are updated in place.
    """

    function: Callable[..., int]
    keys: list[str]
    projections: list[str]
    params: list[np.ndarray]
    arrays: list[np.ndarray]


class _Arguments:
    """Names for the arrays a program reads and writes, each passed once."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._names: dict[int, str] = {}

    def __call__(self, array: np.ndarray) -> str:
        name = self._names.get(id(array))
        if name is None:
            name = self._names[id(array)] = f"a{len(self.arrays)}"
            self.arrays.append(array)
        return name


def step_program(engine: Any, reset: int, units: int, drive: int, feedback: int) -> StepProgram | None:
    """The compiled step program of ``engine`` (a :class:`~plasticity.backends.numba_backend.NumbaEngine`,
    whose plan, arrays and drive caches it reads); the operation codes are the engine's plan codes
    (any other is plasticity).

    ``None`` when the step has nothing to run.
    """
    keys = list(engine._version)
    index = {key: position for position, key in enumerate(keys)}
    projections = list(engine._contribution)
    row = {name: position for position, name in enumerate(projections)}
    arguments = _Arguments()
    params: list[np.ndarray] = []
    kernels: set[str] = set()  # the generated functions the program calls
    body = _Lines()
    body.depth = 2
    for code, payload, writes in engine._plan:
        if code == reset:
            for array in payload:
                body(f"{arguments(array)}[...] = 0.0")
        elif code == units:
            function, values, state = payload
            name = function.py_func.__name__
            kernels.add(name)
            params.append(values)
            body(f"{name}(t, dt, p{len(params) - 1}, {', '.join(arguments(a) for a in state)})")
        elif code == drive:
            _drive(body, engine, *payload, row, index, arguments)
        elif code == feedback:
            _feedback(body, engine, *payload, arguments)
        else:
            kernel, (values, *sizes), (xn, next_drive), state = engine._plasticity[payload]
            name = kernel.py_func.__name__
            kernels.add(name)
            params.append(values)
            body(f"if learn[{row[payload]}]:  # {payload}")
            body.indent()
            passed = [f"p{len(params) - 1}", *map(str, sizes), "False", arguments(xn), arguments(next_drive), *map(arguments, state)]
            body(f"{name}(t, dt, {', '.join(passed)})")
            for key in writes:
                body(f"versions[{index[key]}] += 1")
            body.dedent()
            continue
        for key in writes:
            body(f"versions[{index[key]}] += 1")
    if not body.lines:
        return None
    lines = _Lines()
    lines("import sys")
    lines("")
    lines("import numba")
    lines("import numpy as np")
    lines("")
    lines("from plasticity.backends.numba_backend import _matvec, _matvec_transposed")
    lines("")
    lines(f"kernels = sys.modules[{engine.module.__name__!r}]")
    for name in sorted(kernels):
        lines(f"{name} = kernels.{name}")
    lines("")
    lines("")
    lines("@numba.njit(cache=True, nogil=True, error_model='numpy')")
    signature = ["first", "steps", "dt", "learn", "versions", "drives"]
    signature += [f"p{k}" for k in range(len(params))] + [f"a{k}" for k in range(len(arguments.arrays))]
    lines(f"def run({', '.join(signature)}):")
    lines.indent()
    lines("reused = 0")
    lines("for s in range(steps):")
    lines.indent()
    lines("t = (first + s + 1) * dt")
    text = lines.text() + body.text() + "    return reused\n"
    module = load_module(text)
    return StepProgram(module.run, keys, projections, params, arguments.arrays)


def _accumulate(body: _Lines, target: str, value: str, assign: bool) -> None:
    body(f"{target}[...] = {value}" if assign else f"{target} += {value}")


def _product(body: _Lines, shared: bool, transposed: bool, weights: str, source: str, out: str) -> None:
    """``out = source @ weights.T`` (drive) or ``source @ weights`` (``transposed``: feedback), per trial
    when the weights are not shared."""
    if shared:
        body(f"np.dot({source}, {weights if transposed else weights + '.T'}, {out})")
    else:
        body(f"{out}[...] = 0.0")
        body(f"{'_matvec_transposed' if transposed else '_matvec'}({weights}, {source}, {out})")


def _drive(body: _Lines, engine: Any, name: str, assign: bool, row: dict, index: dict, arguments: _Arguments) -> None:
    """The engine's ``_drive`` in compiled form (see its docstring): reuse the product while its
    inputs are unwritten; compute straight into the target when the source changes every step."""
    source_key, weights_key, _, contribution, shared, source, weights, target, _, _ = engine._contribution[name]
    r = row[name]
    src, w, out, kept = arguments(source), arguments(weights), arguments(target), arguments(contribution)
    body(f"# drive {name}")
    body(f"vs = versions[{index[source_key]}]")
    body(f"vw = versions[{index[weights_key]}]")
    body(f"if drives[{r}, 0] == 1 and drives[{r}, 1] == vs and drives[{r}, 2] == vw:")
    body.indent()("reused += 1")
    body(f"drives[{r}, 6] = 0")
    _accumulate(body, out, kept, assign)
    body.dedent()
    body("else:")
    body.indent()
    body(f"changing = drives[{r}, 6] == 1 and not (drives[{r}, 3] == 1 and drives[{r}, 4] == vs and drives[{r}, 5] == vw)")
    body(f"drives[{r}, 6] = 1")
    body("if changing:")
    body.indent()(f"drives[{r}, 0] = 0")
    if assign:
        _product(body, shared, False, w, src, out)
    else:  # the kept buffer is free while no stamp is held
        _product(body, shared, False, w, src, kept)
        _accumulate(body, out, kept, False)
    body.dedent()
    body("else:")
    body.indent()
    _product(body, shared, False, w, src, kept)
    body(f"drives[{r}, 0] = 1")
    body(f"drives[{r}, 1] = vs")
    body(f"drives[{r}, 2] = vw")
    _accumulate(body, out, kept, assign)
    body.dedent()
    body.dedent()
    body(f"drives[{r}, 3] = 1")
    body(f"drives[{r}, 4] = vs")
    body(f"drives[{r}, 5] = vw")


def _feedback(body: _Lines, engine: Any, name: str, assign: bool, arguments: _Arguments) -> None:
    shared, weights, source, target = engine._feedbacks[name]
    w, src, out = arguments(weights), arguments(source), arguments(target)
    body(f"# feedback {name}")
    if assign:
        _product(body, shared, True, w, src, out)
        return
    scratch = arguments(np.zeros_like(target))
    _product(body, shared, True, w, src, scratch)
    _accumulate(body, out, scratch, False)

"""Hand-written numba kernels of the numba backend, shared by the engine's step and the compiled
step programs (:mod:`plasticity.backends.numba_program`), which call the helpers below so
that a program's own code stays a list of calls (its compile stays short) while these are
compiled once per dtype for every network and cached with this module.

Whole-array copies, sums and fills are flat loops: numba's array expressions (``a += b``,
``a[...] = b``) ran several times slower inside a compiled program (``benchmarks/README.md``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from plasticity.backends.blas import gemm, threads
from plasticity.backends.numba_source import PARALLEL_MIN_ELEMENTS
from plasticity.backends.numba_source import FASTMATH

_JIT = dict(cache=True, fastmath=set(FASTMATH), error_model="numpy", nogil=True)


@numba.njit(**_JIT)
def _matvec_entry(weights, source, target, k):  # pragma: no cover - compiled
    """target[t, i] += sum_j weights[t, i, j] * source[t, j] for entry ``k = t * npost + i``, accumulated in float64."""
    npost, npre = weights.shape[1], weights.shape[2]
    t = k // npost
    i = k % npost
    acc = 0.0
    for j in range(npre):
        acc += weights[t, i, j] * source[t, j]
    target[t, i] += acc


@numba.njit(**_JIT)
def _matvec_transposed_chunk(weights, source, target, k):  # pragma: no cover - compiled
    """target[t, j] += sum_i weights[t, i, j] * source[t, i] over chunk ``k`` of 256 columns of
    trial ``t`` (chunks numbered trial by trial)."""
    npost, npre = weights.shape[1], weights.shape[2]
    chunks = (npre + 255) // 256
    t = k // chunks
    j0 = (k % chunks) * 256
    j1 = min(j0 + 256, npre)
    acc = np.zeros(j1 - j0)
    for i in range(npost):
        a = source[t, i]
        row = weights[t, i, j0:j1]  # a view indexed from 0: the loop vectorises
        for j in range(j1 - j0):
            acc[j] += row[j] * a
    out = target[t, j0:j1]
    for j in range(j1 - j0):
        out[j] += acc[j]


@numba.njit(parallel=True, **_JIT)
def _matvec_threaded(weights, source, target, transposed):  # pragma: no cover - compiled
    trials, npost, npre = weights.shape
    if transposed:
        for k in numba.prange(trials * ((npre + 255) // 256)):
            _matvec_transposed_chunk(weights, source, target, k)
    else:
        for k in numba.prange(trials * npost):
            _matvec_entry(weights, source, target, k)


@numba.njit(**_JIT)
def _matvec(weights, source, target, transposed):  # pragma: no cover - compiled
    """Per-trial products added to ``target``: ``target[t] += weights[t] @ source[t]``, or with
    ``transposed`` ``weights[t].T @ source[t]``; threaded unless :func:`~plasticity.backends.blas.threads`
    allows one thread (see :func:`~plasticity.backends.numba_source.kernel_source`) or the weights
    are fewer than :data:`~plasticity.backends.numba_source.PARALLEL_MIN_ELEMENTS`, as generated kernels."""
    if threads() > 1 and weights.size >= PARALLEL_MIN_ELEMENTS:
        _matvec_threaded(weights, source, target, transposed)
        return
    trials, npost, npre = weights.shape
    if transposed:
        for k in range(trials * ((npre + 255) // 256)):
            _matvec_transposed_chunk(weights, source, target, k)
    else:
        for k in range(trials * npost):
            _matvec_entry(weights, source, target, k)


@numba.njit(**_JIT)
def _all_finite(values):  # pragma: no cover - compiled
    """Whether no element of the flat array ``values`` is NaN or infinite (``x * 0`` is NaN exactly then)."""
    acc = values.dtype.type(0.0)
    for j in range(values.size):
        acc += values[j] * 0
    return acc == 0


@numba.njit(**_JIT)
def _copy_into(target, value):  # pragma: no cover - compiled
    flat, source = target.reshape(-1), value.reshape(-1)
    for k in range(flat.size):
        flat[k] = source[k]


@numba.njit(**_JIT)
def _add_into(target, value):  # pragma: no cover - compiled
    flat, source = target.reshape(-1), value.reshape(-1)
    for k in range(flat.size):
        flat[k] += source[k]


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the processor to bring the cache line of ``array[index]`` (1-d, contiguous) into its caches."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = ir.IntType(8).as_pointer()
        word = ir.IntType(32)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte, word, word, word]),
                                                  "llvm.prefetch.p0i8")
        # read, high temporal locality, data cache
        builder.call(function, [builder.bitcast(builder.gep(data, [args[1]]), byte), word(0), word(3), word(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@numba.njit(**_JIT)
def _copy_items(target, data, order, s, low):  # pragma: no cover - compiled
    """Row ``r`` of ``target`` (``(rows, units)``, the trials ``low`` to ``low + rows``) becomes item
    ``order[low + r, s]`` of its trial's data set: ``data`` is ``(trials, items, units)``, or
    ``(1, items, units)`` for one data set shown to every trial (a presented data set's step ``s``).
    The items of step ``s + 1`` are prefetched: each trial's item lies elsewhere in a data set
    larger than the caches (50 trials x 400 items x 200 units: 20% less time per copy)."""
    rows, units = target.shape
    shared = data.shape[0] == 1
    following = s + 1 < order.shape[1]
    for r in range(rows):
        trial = low + r
        if following:
            upcoming = data[0 if shared else trial, order[trial, s + 1]]
            for k in range(0, units, 16):  # a cache line holds 16 float32 values
                _prefetch(upcoming, k)
        item = data[0 if shared else trial, order[trial, s]]
        out = target[r]
        for k in range(units):
            out[k] = item[k]


@numba.njit(**_JIT)
def _count_changes(weights, before, counts):  # pragma: no cover - compiled
    """Add 1 to ``counts[t]`` for every trial ``t`` whose ``weights[t]`` differ from ``before[t]``, and
    copy the weights into ``before`` (a presented data set's updates, counted per step). No branch
    in the loop, so that it vectorises (a NaN differs from itself: counted as a change)."""
    trials = weights.shape[0]
    size = weights.size // trials
    flat, kept = weights.reshape(-1), before.reshape(-1)
    for t in range(trials):
        row, old = flat[t * size : (t + 1) * size], kept[t * size : (t + 1) * size]
        changed = 0
        for k in range(size):
            changed |= row[k] != old[k]
            old[k] = row[k]
        counts[t] += changed


@numba.njit(**_JIT)
def _add_marks(changed, counts):  # pragma: no cover - compiled
    """Add the marks a rule's kernel left in ``changed`` (1 for a trial whose weights it changed) to
    ``counts`` and clear them (a presented data set's updates, counted per step)."""
    for t in range(changed.shape[0]):
        counts[t] += changed[t]
        changed[t] = 0


@numba.njit(**_JIT)
def _fill_zero(target):  # pragma: no cover - compiled
    flat = target.reshape(-1)
    for k in range(flat.size):
        flat[k] = 0.0


def _product_into(weights, source, out, transposed, accumulate):
    """``out = source @ weights.T`` (a drive) or ``source @ weights`` (``transposed``: feedback), added
    to ``out`` when ``accumulate``; with weights per trial (3 dimensions) trial by trial. Compiled by
    the overload below, by weight type."""
    raise NotImplementedError("called from compiled code only")


@overload(_product_into, jit_options=_JIT)
def _product_into_overload(weights, source, out, transposed, accumulate):
    if weights.ndim == 2:  # shared weights: one BLAS product, accumulated by BLAS itself (beta = 1)

        def shared(weights, source, out, transposed, accumulate):  # pragma: no cover - compiled
            beta = 1.0 if accumulate else 0.0
            if transposed:
                gemm(1.0, source, weights, beta, out)
            else:
                gemm(1.0, source, weights.T, beta, out)

        return shared

    def per_trial(weights, source, out, transposed, accumulate):  # pragma: no cover - compiled
        if not accumulate:
            _fill_zero(out)
        _matvec(weights, source, out, transposed)

    return per_trial


@numba.njit(**_JIT)
def _stamped(drives, row, source_version, weights_version):  # pragma: no cover - compiled
    """Whether the product kept for row ``row`` of the drive table was computed at these write counts."""
    return drives[row, 0] == 1 and drives[row, 1] == source_version and drives[row, 2] == weights_version


@numba.njit(**_JIT)
def _drive(drives, row, source_version, weights_version, assign, unchanged, source, weights, target, kept):  # pragma: no cover - compiled
    """The engine's ``_drive`` (see its docstring) for the projection in row ``row`` of the drive
    table (:data:`~plasticity.backends.numba_program.DRIVE_FIELDS`): reuse the product while its inputs are unwritten, compute straight
    into the target when the source changes every step. Returns 1 when the product was reused.
    ``unchanged``: the target already holds the sum this product is part of (only when it is reused;
    see :func:`~plasticity.backends.numba_program._kept_sums`), so nothing is added."""
    reused = 0
    if _stamped(drives, row, source_version, weights_version):
        reused = 1
        drives[row, 6] = 0
        if not unchanged:
            if assign:
                _copy_into(target, kept)
            else:
                _add_into(target, kept)
    else:
        seen = drives[row, 3] == 1 and drives[row, 4] == source_version and drives[row, 5] == weights_version
        changing = drives[row, 6] == 1 and not seen
        drives[row, 6] = 1
        if changing:
            drives[row, 0] = 0
            _product_into(weights, source, target, False, not assign)
        else:
            _product_into(weights, source, kept, False, False)
            drives[row, 0] = 1
            drives[row, 1] = source_version
            drives[row, 2] = weights_version
            if assign:
                _copy_into(target, kept)
            else:
                _add_into(target, kept)
    drives[row, 3] = 1
    drives[row, 4] = source_version
    drives[row, 5] = weights_version
    return reused


@numba.njit(**_JIT)
def _feedback(assign, weights, source, target):  # pragma: no cover - compiled
    """Add (``assign``: write) the transposed product of a projection's feedback into its target."""
    _product_into(weights, source, target, True, not assign)


@intrinsic
def _pointer(typingctx, address, kind):
    """The ``address`` (an int) as a pointer to ``kind`` values (``np.float32``, ...), for ``numba.carray``."""
    scalar = kind.instance_type

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(scalar)))

    return types.CPointer(scalar)(address, kind), codegen


@intrinsic
def _call_block(typingctx, entry, block, blocks, table):
    """Call the compiled step program at address ``entry``, ``void(int64 block, int64 blocks, int64 *table)``."""

    def codegen(context, builder, signature, args):
        integer = ir.IntType(64)
        function = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [integer] * 2 + [integer.as_pointer()]).as_pointer())
        data = context.make_array(signature.args[3])(context, builder, args[3]).data
        builder.call(function, [args[1], args[2], builder.bitcast(data, integer.as_pointer())])
        return context.get_dummy_value()

    return types.void(entry, block, blocks, table), codegen


@numba.njit(**_JIT)
def run_alone(entry, table):  # pragma: no cover - compiled
    """Run the step program at ``entry`` on every trial, on this thread (its kernels and products
    threaded as the thread count allows)."""
    _call_block(entry, 0, 1, table)


@numba.njit(**_JIT)
def run_serially(entry, blocks, table):  # pragma: no cover - compiled
    """Run the step program at ``entry`` on its ``blocks`` blocks one after another, on this thread
    (each with one thread; a run that leaves trials out)."""
    for block in range(blocks):
        _call_block(entry, block, blocks, table)


@numba.njit(parallel=True, **_JIT)
def run_in_blocks(entry, blocks, table):  # pragma: no cover - compiled
    """Run the step program at ``entry`` on ``blocks`` blocks of the trials at once, one per thread
    (each block runs with one thread: see :mod:`~plasticity.backends.numba_program`)."""
    for block in numba.prange(blocks):
        _call_block(entry, block, blocks, table)

"""Predictive coding training throughput (issue 7), measured side by side in one run.

Training samples per second on sizes [784, 256, 256, 10], tanh, batch 128, random data, float32:

1. ``pc`` (standard PC, T inference steps, default 20), ``zil`` and ``bp`` (backpropagation on the
   engine) with :class:`~plasticity.networks.predictive_coding.PredictiveCodingModel`, on each
   backend asked for (numba and torch by default; numpy optionally); on numba also ``pc`` with
   compiled step programs against the same model with them switched off (every step dispatched
   from Python), in alternating rounds, here and on the ``pc.train`` default network
   ([64, 128, 10], batch 32), where dispatch weighs more; with several threads, here also
   against the same model whose runs never split their trials into blocks;
2. ``torch autograd``: a plain torch loop (forward, MSE loss, ``backward``, SGD step) on the same
   network, the baseline every ratio is taken against: timed before and after the backends (the
   best of both), and also in the alternating rounds, where the ratios to it are side by side;
3. ``hand-written``: the same pc training written by hand as one numba function per batch (the
   input's drive once, each inference step two BLAS products per layer pair and one fused pass
   per layer for errors, values, rates and slopes, the update as three products; with several
   threads the inference in blocks of trials, a thread each, as the engine runs it), with the
   same BLAS and tanh; checked to give the engine's weights after a batch, and timed in the same
   alternating rounds as the engine. The engine's ratio to it says what its generality costs.

Also reported: the engine's share, the seconds inside ``engine.step`` and numba's compiled runs
against the whole training step (the rest is Simulation and model bookkeeping: finiteness
checks, setting clamps and switches). The matrix products of a batch timed alone give the
floor any implementation with this BLAS has. numba engines compile their step program at once
here (``COMPILE_AFTER_SECONDS = 0``), to measure the steady state. Every figure is the best of several repeats (other programs share the
cores). Target from the issue: pc at T = 20 >= 20,000 samples/s on the default backend of a
2-core machine.

``--threads N`` limits BLAS, numba and torch to N threads each (threadpoolctl, ``numba.set_num_threads``,
``torch.set_num_threads``): on a machine whose cores other programs share, N = 1 avoids
oversubscription (BLAS and numba worker threads spinning against each other), which otherwise
slows every backend several-fold and makes the figures irreproducible.

Usage: ``python benchmarks/bench_pc.py [--backends numba torch] [--batches 6] [--repeats 3] [--threads 1] [--name pc]``;
writes ``benchmarks/results/pc.json`` and ``benchmarks/results/pc.md`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np
import torch

from plasticity.backends import available_backends, blas, numba_backend
from plasticity.backends.blas import one_thread, threads, threads_back
from plasticity.backends.numba_codegen import FASTMATH
from plasticity.networks.predictive_coding import PredictiveCodingModel
from plasticity.provenance import now_iso

RESULTS = Path(__file__).resolve().parent / "results"
# the steady state: numba engines compile their step program at once instead of after
# COMPILE_AFTER_SECONDS of stepping (which this benchmark's short runs would not reach)
numba_backend.COMPILE_AFTER_SECONDS = 0.0
SIZES = [784, 256, 256, 10]
BATCH = 128
GAMMA, LR = 0.1, 0.01
SMALL_SIZES, SMALL_BATCH = [64, 128, 10], 32
_ENGINE_BLAS_IS_MKL = blas.BLAS.startswith("MKL")


def _compare_blas() -> bool:
    """Whether to time scipy's BLAS beside MKL: on one thread only, as two libraries with several
    threads each in one process spin against each other (both ran 2x slower on 2 cores)."""
    return _ENGINE_BLAS_IS_MKL and numba.get_num_threads() == 1


def _data(batches: int, seed: int = 0, sizes=SIZES, batch=BATCH):
    rng = np.random.default_rng(seed)
    x = rng.random((batches, batch, sizes[0])).astype(np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], (batches, batch))]
    return x, y


def _model(mode: str, backend: str, sizes=SIZES, batch=BATCH) -> PredictiveCodingModel:
    return PredictiveCodingModel(sizes, activation="tanh", mode=mode, gamma=GAMMA, lr=LR, optimizer="sgd",
                                 batch=batch, backend=backend, dtype="float32", seed=0)


def bench_engine(mode: str, backend: str, steps: int, batches: int, repeats: int) -> dict:
    model = _model(mode, backend)
    x, y = _data(batches)
    engine = model.sim.engine
    model.train_batch(x[0], y[0], steps)  # compile / warm up
    inside = [0.0]

    def timed(method):
        def call(*args, **kwargs):
            start = time.perf_counter()
            result = method(*args, **kwargs)
            inside[0] += time.perf_counter() - start
            return result

        return call

    entries = [name for name in ("step", "run_compiled") if hasattr(engine, name)]  # compiled runs: numba only
    original = {name: getattr(engine, name) for name in entries}
    for name, method in original.items():
        setattr(engine, name, timed(method))
    reused, split = getattr(engine, "cached_drives", 0), getattr(engine, "split_runs", 0)
    best, best_share = float("inf"), 0.0
    for _ in range(repeats):
        inside[0] = 0.0
        start = time.perf_counter()
        for b in range(batches):
            model.train_batch(x[b], y[b], steps)
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, best_share = elapsed, inside[0] / elapsed
    for name, method in original.items():
        setattr(engine, name, method)
    reused = (getattr(engine, "cached_drives", 0) - reused) / (repeats * batches)
    split = (getattr(engine, "split_runs", 0) - split) / (repeats * batches)
    # pc: a sweep one step short (the first inference step completes it), the inference, the update step
    engine_steps = model.depth + (steps if mode == "pc" else model.depth)
    return {
        "drives_reused_per_batch": reused,
        "runs_split_per_batch": split,
        "samples_per_s": batches * BATCH / best,
        "engine_share": best_share,
        "engine_steps_per_batch": engine_steps,
        "ms_per_engine_step": 1e3 * best * best_share / (batches * engine_steps),
    }


def bench_alternating(sizes, batch: int, steps: int, batches: int, rounds: int) -> dict:
    """numba pc with compiled step programs, the same model stepping from Python and, on SIZES, the
    hand-written pc batch and the torch autograd loop, in alternating rounds (so that all see the
    same machine); best round of each."""
    x, y = _data(batches, sizes=sizes, batch=batch)
    runs = {}
    full_size = list(sizes) == SIZES and batch == BATCH
    kinds = ["compiled", "step_by_step"] + (["compiled_unsplit"] if full_size and threads() > 1 else [])
    for kind in kinds:
        model = _model("pc", "numba", sizes, batch)
        if kind == "step_by_step":
            model.sim.engine.run_compiled = lambda *args: False
        if kind == "compiled_unsplit":  # every run's trials on all threads at once, as before runs were split
            model.sim.engine.split_min_work = float("inf")
        model.train_batch(x[0], y[0], steps)
        runs[kind] = lambda b, model=model: model.train_batch(x[b], y[b], steps)
    found = {"sizes": list(sizes), "batch": batch, "rounds": rounds}
    if full_size:
        runs["hand_written"], found["max_weight_difference_to_engine"] = _hand_written_run(x, y, steps)
        if _compare_blas():  # the same loop on the BLAS the engine used before MKL
            runs["hand_written_scipy_blas"], _ = _hand_written_run(x, y, steps, _scipy_blas_gemm)
        runs["torch_autograd"] = _torch_autograd_run(batches)  # the baseline, side by side
    best = _alternating_rounds(runs, batches, rounds)
    found.update({f"{name}_samples_per_s": batch / seconds for name, seconds in best.items()})
    found["compiled_gain"] = best["step_by_step"] / best["compiled"]
    if "compiled_unsplit" in best:
        found["split_gain"] = best["compiled_unsplit"] / best["compiled"]
    if "hand_written" in best:
        found["compiled_to_hand_written"] = best["hand_written"] / best["compiled"]
        found["compiled_to_torch_autograd"] = best["torch_autograd"] / best["compiled"]
        found["hand_written_to_torch_autograd"] = best["torch_autograd"] / best["hand_written"]
    if "hand_written_scipy_blas" in best:
        found["hand_written_mkl_gain"] = best["hand_written_scipy_blas"] / best["hand_written"]
    return found


def _alternating_rounds(runs: dict, batches: int, rounds: int) -> dict:
    """Seconds per batch of each ``run(b)``, the best of ``rounds`` rounds in which every run takes
    its turn over ``batches`` batches (so that all see the same machine)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            for b in range(batches):
                run(b)
            best[key] = min(best[key], (time.perf_counter() - start) / batches)
    return best


def bench_step_cost(steps: int, batches: int, rounds: int) -> dict:
    """Where the engine's time goes against the hand-written loop: both run pc batches at T = 1 and
    T = 1 + 2 * steps in alternating rounds; the difference over 2 * steps is the cost of one
    inference step, the rest of a T = 1 batch the cost of a batch without its inference steps
    (clamps, sweep, update, and for the engine the Python around them)."""
    x, y = _data(batches)
    model = _model("pc", "numba")
    hand_written, _ = _hand_written(model)
    many = 1 + 2 * steps
    runs = {
        ("engine", 1): lambda b: model.train_batch(x[b], y[b], 1),
        ("engine", many): lambda b: model.train_batch(x[b], y[b], many),
        ("hand_written", 1): lambda b: hand_written(x[b], y[b], 1),
        ("hand_written", many): lambda b: hand_written(x[b], y[b], many),
    }
    for run in runs.values():
        run(0)
    best = _alternating_rounds(runs, batches, rounds)
    found = {"rounds": rounds}
    for name in ("engine", "hand_written"):
        step = (best[(name, many)] - best[(name, 1)]) / (many - 1)
        found[f"{name}_ms_per_inference_step"] = 1e3 * step
        found[f"{name}_ms_per_batch_besides_inference"] = 1e3 * (best[(name, 1)] - step)
    return found


@numba.njit
def _scipy_blas_gemm(alpha, a, b, beta, out):  # pragma: no cover - compiled
    """:func:`~plasticity.backends.blas.gemm` through numba's ``np.dot`` (scipy's BLAS): the products
    the engine made before it called MKL, for the hand-written loop's comparison."""
    if alpha == 1.0 and beta == 0.0:
        np.dot(a, b, out)
    else:
        out += alpha * np.dot(a, b)


def _hand_written_kernel(tanh, gemm):
    """One pc training batch on SIZES written by hand (see the module docstring), built around the
    engine's float32 ``tanh`` so that both compute the same function, its products made by ``gemm``
    (``gemm(alpha, a, b, beta, out)``: ``out = alpha * a @ b + beta * out``)."""
    fastmath = set(FASTMATH)
    one = np.float32(1.0)

    @numba.njit(fastmath=fastmath, error_model="numpy")
    def relax_layer(x, bias_drive, mu, b, feedback, slope, gamma, rate, error, with_bias):
        """e = x - mu (- b); x += gamma * (slope * feedback - e); rate, slope = tanh(x), 1 - tanh(x)^2."""
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                e = x[i, j] - (bias_drive[i, j] if with_bias else mu[i, j] + b[j])
                error[i, j] = e
                v = x[i, j] + gamma * (slope[i, j] * feedback[i, j] - e)
                x[i, j] = v
                f = tanh(v)
                rate[i, j] = f
                slope[i, j] = one - f * f

    @numba.njit(fastmath=fastmath, error_model="numpy", nogil=True)
    def infer(steps, g, target, b1, w2, b2, w3, b3, drive1, x1, e1, fx1, fp1, g1, mu2, x2, e2, fx2, fp2, g2, mu3, e3):
        """``steps`` inference steps on a block of the trials, then their errors."""
        for step in range(steps + 1):  # the last pass computes the errors of the relaxed state
            gemm(1.0, fx1, w2.T, 0.0, mu2)
            gemm(1.0, fx2, w3.T, 0.0, mu3)
            for i in range(e3.shape[0]):
                for j in range(e3.shape[1]):
                    e3[i, j] = target[i, j] - mu3[i, j] - b3[j]
            gemm(1.0, e3, w3, 0.0, g2)
            if step == steps:
                for i in range(e2.shape[0]):
                    for j in range(e2.shape[1]):
                        e2[i, j] = x2[i, j] - mu2[i, j] - b2[j]
                        e1[i, j] = x1[i, j] - drive1[i, j]
                break
            relax_layer(x2, mu2, mu2, b2, g2, fp2, g, fx2, e2, False)  # e2 from the state before the step
            gemm(1.0, e2, w2, 0.0, g1)
            relax_layer(x1, drive1, drive1, b1, g1, fp1, g, fx1, e1, True)

    @numba.njit(fastmath=fastmath, error_model="numpy", parallel=True)
    def infer_in_blocks(blocks, steps, g, target, b1, w2, b2, w3, b3, drive1, x1, e1, fx1, fp1, g1, mu2, x2, e2, fx2, fp2, g2, mu3, e3):
        """:func:`infer` on ``blocks`` blocks of the trials at once, one thread each (serial products)."""
        trials = x1.shape[0]
        for block in numba.prange(blocks):
            low, high = trials * block // blocks, trials * (block + 1) // blocks
            count = one_thread()
            infer(steps, g, target[low:high], b1, w2, b2, w3, b3, drive1[low:high], x1[low:high], e1[low:high], fx1[low:high],
                  fp1[low:high], g1[low:high], mu2[low:high], x2[low:high], e2[low:high], fx2[low:high], fp2[low:high],
                  g2[low:high], mu3[low:high], e3[low:high])
            threads_back(count)

    @numba.njit(fastmath=fastmath, error_model="numpy")
    def train_batch(x0, target, w1, b1, w2, b2, w3, b3, steps, gamma, lr, scratch):
        drive1, x1, e1, fx1, fp1, g1, mu2, x2, e2, fx2, fp2, g2, mu3, e3 = scratch
        g = np.float32(gamma)
        gemm(1.0, x0, w1.T, 0.0, drive1)  # constant while the input is clamped
        for i in range(x1.shape[0]):
            for j in range(x1.shape[1]):
                drive1[i, j] += b1[j]
                x1[i, j] = drive1[i, j]
                f = tanh(x1[i, j])
                fx1[i, j] = f
                fp1[i, j] = one - f * f
        gemm(1.0, fx1, w2.T, 0.0, mu2)
        for i in range(x2.shape[0]):
            for j in range(x2.shape[1]):
                x2[i, j] = mu2[i, j] + b2[j]
                f = tanh(x2[i, j])
                fx2[i, j] = f
                fp2[i, j] = one - f * f
        gemm(1.0, fx2, w3.T, 0.0, mu3)
        prediction = mu3 + b3
        state = (target, b1, w2, b2, w3, b3, drive1, x1, e1, fx1, fp1, g1, mu2, x2, e2, fx2, fp2, g2, mu3, e3)
        blocks = threads()
        if blocks > 1:  # the trials' inference is independent: a block per thread, as the engine runs it
            infer_in_blocks(blocks, steps, g, *state)
        else:
            infer(steps, g, *state)
        scale = np.float32(lr / x0.shape[0])
        gemm(scale, e1.T, x0, 1.0, w1)
        gemm(scale, e2.T, fx1, 1.0, w2)
        gemm(scale, e3.T, fx2, 1.0, w3)
        b1 += scale * e1.sum(axis=0)
        b2 += scale * e2.sum(axis=0)
        b3 += scale * e3.sum(axis=0)
        return prediction

    return train_batch


_HAND_WRITTEN_WEIGHTS = ("w1", "b1", "w2", "b2", "w3", "b3")


def _hand_written(model: PredictiveCodingModel, gemm=blas.gemm):
    """``train(data, target, steps)``: the hand-written pc batch on a copy of ``model``'s weights, and
    those weights (w1, b1, w2, b2, w3, b3), updated in place; products by ``gemm`` (the engine's BLAS
    by default)."""
    kernel = _hand_written_kernel(model.sim.engine.module.tanh32, gemm)
    weights = [np.ascontiguousarray(model.weights()[name], dtype=np.float32) for name in _HAND_WRITTEN_WEIGHTS]
    scratch = tuple(np.zeros((BATCH, n), np.float32) for n in [SIZES[1]] * 12 + [SIZES[-1]] * 2)
    return (lambda data, target, steps: kernel(data, target, *weights, steps, GAMMA, LR, scratch)), weights


def _hand_written_run(x: np.ndarray, y: np.ndarray, steps: int, gemm=blas.gemm):
    """The hand-written pc batch (products by ``gemm``) as ``run(b)`` on batch ``b`` of ``x, y``, and
    the largest weight difference to the engine after one batch from the same weights (raises above 1e-5)."""
    model = _model("pc", "numba")
    train, weights = _hand_written(model, gemm)
    train(x[0], y[0], steps)
    model.train_batch(x[0], y[0], steps)
    engine_weights = model.weights()
    difference = max(float(np.abs(engine_weights[name] - value).max()) for name, value in zip(_HAND_WRITTEN_WEIGHTS, weights))
    if difference > 1e-5:
        raise AssertionError(f"the hand-written pc batch differs from the engine's by {difference:.2e}")
    return (lambda b: train(x[b], y[b], steps)), difference


@numba.njit
def _products(lefts, rights, outs, repeats):  # pragma: no cover - compiled
    for _ in range(repeats):
        for k in range(len(outs)):
            blas.gemm(1.0, lefts[k], rights[k], 0.0, outs[k])


@numba.njit
def _products_scipy_blas(lefts, rights, outs, repeats):  # pragma: no cover - compiled
    for _ in range(repeats):
        for k in range(len(outs)):
            np.dot(lefts[k], rights[k], outs[k])


@numba.njit(parallel=True)
def _products_in_blocks(lefts, rights, outs, repeats, blocks):  # pragma: no cover - compiled
    """:func:`_products` with the rows of every product cut into ``blocks`` blocks, each computed on
    a thread of its own with one BLAS thread (how the engine runs a pc batch's trials)."""
    for block in numba.prange(blocks):
        count = one_thread()
        for _ in range(repeats):
            for k in range(len(outs)):
                rows = lefts[k].shape[0]
                low, high = rows * block // blocks, rows * (block + 1) // blocks
                blas.gemm(1.0, lefts[k][low:high], rights[k], 0.0, outs[k][low:high])
        threads_back(count)


def bench_products(steps: int, repeats: int) -> dict:
    """The matrix products a pc training batch cannot avoid, timed alone, called from compiled code
    with the same BLAS: per inference step the drives and feedbacks of layers 2..L (layer 1's drive
    is constant and hoisted), the feedforward sweep, and the weight updates. A lower bound for any
    implementation of the same algorithm with this BLAS; its samples/s is the ceiling for pc.
    With several threads, also with the products of the trials' rows (sweep and inference) in
    blocks of trials, a thread each, and the weight updates whole, as the engine runs them; the
    ceiling is the faster of the two."""
    rng = np.random.default_rng(0)
    products = []  # (m, k, n): an (m, k) @ (k, n) product

    def add(m, k, n, count=1):
        products.extend([(m, k, n)] * count)

    for n_in, n_out in zip(SIZES[1:-1], SIZES[2:]):
        add(BATCH, n_in, n_out, steps + 1)  # drive (inference steps and the update step)
        add(BATCH, n_out, n_in, steps + 1)  # feedback
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        add(BATCH, n_in, n_out, 1)  # feedforward sweep
        add(n_out, BATCH, n_in, 1)  # weight update
    operands = {shape: (rng.standard_normal(shape[:2]).astype(np.float32), rng.standard_normal(shape[1:]).astype(np.float32),
                        np.zeros((shape[0], shape[2]), np.float32)) for shape in set(products)}
    lefts, rights, outs = (numba.typed.List([operands[shape][k] for shape in products]) for k in range(3))
    kernels = {"engine_blas": _products, **({"scipy_blas": _products_scipy_blas} if _compare_blas() else {})}
    blocks = threads()
    if blocks > 1:
        trial_rows = [shape for shape in products if shape[0] == BATCH]
        updates = [shape for shape in products if shape[0] != BATCH]
        split = [numba.typed.List([operands[shape][k] for shape in trial_rows]) for k in range(3)]
        whole = [numba.typed.List([operands[shape][k] for shape in updates]) for k in range(3)]

        def in_blocks(lefts, rights, outs, repeats):
            _products_in_blocks(*split, repeats, blocks)
            _products(*whole, repeats)

        kernels["trial_blocks"] = in_blocks
    best = dict.fromkeys(kernels, float("inf"))
    for kernel in kernels.values():
        kernel(lefts, rights, outs, 1)
    for _ in range(repeats):  # alternating, so that both see the same machine
        for name, kernel in kernels.items():
            start = time.perf_counter()
            kernel(lefts, rights, outs, 5)
            best[name] = min(best[name], (time.perf_counter() - start) / 5)
    fastest = min(best[name] for name in ("engine_blas", "trial_blocks") if name in best)
    found = {"ms_per_batch": 1e3 * fastest, "samples_per_s": BATCH / fastest,
             "whole_ms_per_batch": 1e3 * best["engine_blas"]}
    if "trial_blocks" in best:
        found["trial_blocks_ms_per_batch"] = 1e3 * best["trial_blocks"]
    if "scipy_blas" in best:
        found.update(scipy_blas_ms_per_batch=1e3 * best["scipy_blas"], scipy_blas_samples_per_s=BATCH / best["scipy_blas"])
    return found


def _torch_autograd_run(batches: int):
    """``run(b)``: one training step of a plain torch autograd loop (forward, MSE loss, ``backward``,
    SGD step) on batch ``b`` of ``batches`` random batches, on SIZES with tanh."""
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = _data(batches)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)

    def step(b):
        optimizer.zero_grad()
        loss = 0.5 * ((net(xs[b]) - ys[b]) ** 2).sum() / BATCH
        loss.backward()
        optimizer.step()

    step(0)
    return step


def bench_torch_autograd(batches: int, repeats: int) -> dict:
    step = _torch_autograd_run(batches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for b in range(batches):
            step(b)
        best = min(best, time.perf_counter() - start)
    return {"samples_per_s": batches * BATCH / best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["numba", "torch"])
    parser.add_argument("--modes", nargs="+", default=["pc", "zil", "bp"])
    parser.add_argument("--T", type=int, default=20)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads for BLAS, numba and torch (default: theirs)")
    parser.add_argument("--name", default="pc", help="results file stem (benchmarks/results/<name>.json and .md)")
    args = parser.parse_args()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    present = available_backends()
    backends = [b for b in args.backends if b in present]
    baseline = bench_torch_autograd(max(args.batches, 20), args.repeats)
    floor = bench_products(args.T, args.repeats)
    print(f"numba backend BLAS: {blas.BLAS}", flush=True)
    print(f"matrix products alone (pc, T = {args.T}): {floor}", flush=True)
    rows = []
    for backend, mode in [(backend, mode) for backend in backends for mode in args.modes]:
        result = bench_engine(mode, backend, args.T, args.batches, args.repeats)
        result.update(backend=backend, mode=mode,
                      ratio_to_torch_autograd=result["samples_per_s"] / baseline["samples_per_s"])
        rows.append(result)
        print(f"{backend:6s} {result['mode']:4s} {result['samples_per_s']:10.0f} samples/s  "
              f"({result['ratio_to_torch_autograd']:.3f}x autograd, "
              f"engine {100 * result['engine_share']:.0f}% of the time, {result['ms_per_engine_step']:.2f} ms per engine step)", flush=True)
    alternating = []
    if "numba" in backends:
        for sizes, batch in ((SIZES, BATCH), (SMALL_SIZES, SMALL_BATCH)):
            alternating.append(bench_alternating(sizes, batch, args.T, args.batches, 4 * args.repeats))
            print({key: round(value, 3) if isinstance(value, float) else value for key, value in alternating[-1].items()}, flush=True)
    step_cost = bench_step_cost(args.T, args.batches, 4 * args.repeats) if "numba" in backends else None
    if step_cost:
        print({key: round(value, 3) for key, value in step_cost.items()}, flush=True)
    again = bench_torch_autograd(max(args.batches, 20), args.repeats)  # before and after: the best of both
    if again["samples_per_s"] > baseline["samples_per_s"]:
        baseline = again
        for row in rows:
            row["ratio_to_torch_autograd"] = row["samples_per_s"] / baseline["samples_per_s"]
    print(f"torch autograd {baseline['samples_per_s']:.0f} samples/s")
    report = {
        "benchmark": "pc",
        "date": now_iso(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "threads_limit": args.threads,
        "numba_backend_blas": blas.BLAS,
        "sizes": SIZES,
        "batch": BATCH,
        "T": args.T,
        "dtype": "float32",
        "torch_autograd_samples_per_s": baseline["samples_per_s"],
        "pc_matrix_products_only": floor,
        "numba_pc_alternating_rounds": alternating,
        "numba_pc_step_cost": step_cost,
        "results": rows,
        "target_pc_samples_per_s": 20000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Predictive coding training throughput",
        "",
        f"Sizes {SIZES}, tanh, batch {BATCH}, float32, random data, T = {args.T} for pc; "
        f"{os.cpu_count()} CPUs, thread limit {args.threads}, measured {report['date']} (best of {args.repeats}); 1-minute load "
        f"average {report['load_average_1min_at_end']:.1f} at the end (other programs shared the cores).",
        "",
        "| backend | mode | samples/s | x torch autograd | engine share | ms per engine step | drives reused per batch "
        "| runs split in blocks of trials per batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['mode']} | {row['samples_per_s']:.0f} | {row['ratio_to_torch_autograd']:.3f} | "
            f"{100 * row['engine_share']:.0f}% | {row['ms_per_engine_step']:.2f} | {row['drives_reused_per_batch']:.0f} | "
            f"{row['runs_split_per_batch']:.0f} |"
        )
    lines += [
        "",
        f"torch autograd backpropagation loop: {baseline['samples_per_s']:.0f} samples/s (best of a run before and after).",
        "",
        f"numba pc in alternating rounds (best of {4 * args.repeats}), samples/s:",
        "",
        "| sizes | batch | compiled step programs | step by step | gain | hand-written | compiled / hand-written "
        "| torch autograd | compiled / autograd | hand-written / autograd |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {run['sizes']} | {run['batch']} | {run['compiled_samples_per_s']:.0f} | {run['step_by_step_samples_per_s']:.0f} | "
          f"{run['compiled_gain']:.2f} | " + (f"{run['hand_written_samples_per_s']:.0f} | {run['compiled_to_hand_written']:.2f} | "
                                              f"{run['torch_autograd_samples_per_s']:.0f} | {run['compiled_to_torch_autograd']:.3f} | "
                                              f"{run['hand_written_to_torch_autograd']:.3f} |"
                                              if "hand_written_samples_per_s" in run else "- | - | - | - | - |") for run in alternating],
        "",
        *([f"Trials split into blocks, a thread each, in runs without learning (the sweep and the inference): "
           f"{alternating[0]['compiled_samples_per_s']:.0f} samples/s against {alternating[0]['compiled_unsplit_samples_per_s']:.0f} "
           f"with every run's trials on all threads at once, {alternating[0]['split_gain']:.2f}x.", ""]
          if alternating and "split_gain" in alternating[0] else []),
        "Hand-written: one numba function per batch, the input's drive once, fused elementwise passes, the inference "
        "in blocks of trials (a thread each) when there are several threads, the same BLAS and tanh; its weights after a "
        "batch are within "
        f"{alternating[0]['max_weight_difference_to_engine']:.1e} of the engine's." if alternating else "",
        *(["", f"The same loop with scipy's BLAS (numba's `np.dot`, what the engine used before MKL): "
           f"{alternating[0]['hand_written_scipy_blas_samples_per_s']:.0f} samples/s; MKL's gain "
           f"{alternating[0]['hand_written_mkl_gain']:.2f}x."] if alternating and "hand_written_mkl_gain" in alternating[0] else []),
        "",
        *([f"Per inference step (alternating rounds of T = 1 and T = {1 + 2 * args.T}, best of {step_cost['rounds']}): the engine "
           f"{step_cost['engine_ms_per_inference_step']:.3f} ms, hand-written {step_cost['hand_written_ms_per_inference_step']:.3f} ms; "
           f"the rest of a batch (clamps, sweep, update and, for the engine, the Python around them): the engine "
           f"{step_cost['engine_ms_per_batch_besides_inference']:.2f} ms, hand-written "
           f"{step_cost['hand_written_ms_per_batch_besides_inference']:.2f} ms.", ""] if step_cost else []),
        f"The matrix products of a pc batch alone (T = {args.T}; layer 1's constant drive once), with the same BLAS: "
        f"{floor['ms_per_batch']:.2f} ms per batch, {floor['samples_per_s']:.0f} samples/s: the ceiling for pc on these threads"
        + (f" (whole products {floor['whole_ms_per_batch']:.2f} ms, in blocks of trials {floor['trial_blocks_ms_per_batch']:.2f} ms)"
           if "trial_blocks_ms_per_batch" in floor else "")
        + (f" (with scipy's BLAS: {floor['scipy_blas_ms_per_batch']:.2f} ms, {floor['scipy_blas_samples_per_s']:.0f} samples/s)."
           if "scipy_blas_ms_per_batch" in floor else "."),
        "",
        f"The numba backend's BLAS: {blas.BLAS}.",
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

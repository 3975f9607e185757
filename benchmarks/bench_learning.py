"""Learning capacity benchmark: the ``learn.capacity`` protocol against a numpy loop, side by side.

The workload is a capacity curve of the perceptron rule: random +-1 dichotomies of
``p = load * N`` items, N inputs, every trial its own data set, items shuffled per trial every
epoch, learning stopped per trial once every item is right, at most ``epochs`` epochs.

- ``protocol``: ``learn.capacity`` on the numba backend, in this process; the data sets are
  presented as compiled chunks (``NumbaEngine.run_presented``), the updates counted per step.
  A first point of the same sizes runs before the timing, so compiling (or loading the cached
  program) is excluded and reported on its own.
- ``numpy``: the straightforward numpy loop vectorised over trials: per step one batched dot
  product (``np.einsum``), the mistake test, the update of the weights of the trials that err
  (trials that met the criterion masked) and the update count; per epoch a shuffled order per
  trial and the readout of every item. ``numpy_vecdot``: the same with ``np.vecdot`` (numpy >= 2)
  for the per-step dot products, a faster variant.

Both run alternately ``repeats`` times (who goes first switches every repeat); the medians of
wall-clock and process CPU time count (the machine is shared: CPU time leaves out the waits
for a core), with the ratio of every repeat's pair. The default curve is a
part of the issue's (21 loads x 50 trials, N = 200, 1,000 epochs): loads 1 (every trial learns
its items within the budget, stopping one by one) and 2 (none does: every epoch runs) x 50
trials, N = 200, at most 100 epochs; ``--loads``/``--epochs`` choose others, ``--full`` runs the
whole curve in this process (about an hour of the numpy loops).

``--sweep`` times the issue's whole curve instead as a user runs it: ``plasticity sweep
benchmarks/learning_curve.toml --workers 2`` (21 loads x 50 trials, N = 200, at most 1,000
epochs), in a fresh process with the program in the disk cache (writes learning_sweep.json).

Run: ``python benchmarks/bench_learning.py`` (writes benchmarks/results/learning.json and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _processes import timed_processes

RESULTS = Path(__file__).resolve().parent / "results"


def numpy_loop(patterns: np.ndarray, targets: np.ndarray, epochs: int, rng: np.random.Generator, dot: str = "einsum") -> np.ndarray:
    """Perceptron rule per trial from zero weights, updates counted as the protocol counts them;
    returns which trials got every item right. ``dot``: the per-step dot products by ``np.einsum``
    (the straightforward loop) or ``np.vecdot`` (numpy >= 2; about half the time per step)."""
    trials, items, n = patterns.shape
    weights = np.zeros((trials, n))
    signs = targets[:, :, 0]
    rows = np.arange(trials)[:, None]
    updates = np.zeros(trials, dtype=np.int64)
    met = (np.einsum("tn,tpn->tp", weights, patterns) * signs > 0).all(axis=1)
    for _ in range(epochs):
        if met.all():
            break
        order = np.argsort(rng.random((trials, items)), axis=1)
        shown, wanted = patterns[rows, order], signs[rows, order]
        for k in range(items):
            x, t = shown[:, k], wanted[:, k]
            fields = np.einsum("tn,tn->t", weights, x) if dot == "einsum" else np.vecdot(weights, x)
            wrong = (t * fields <= 0) & ~met
            weights += (wrong * t)[:, None] * x
            updates += wrong
        met |= (np.einsum("tn,tpn->tp", weights, patterns) * signs > 0).all(axis=1)
    return met


def protocol_curve(n: int, loads: list[float], trials: int, epochs: int) -> list[float]:
    from plasticity.protocols import run_protocol

    return [float(run_protocol("learn.capacity", {"n": n, "load": load, "trials": trials, "epochs": epochs}, seed=k)["met"].mean())
            for k, load in enumerate(loads)]


def warm_up(n: int, trials: int) -> None:
    """Compile the kernels, the presentation program and the readout of these sizes into the disk
    cache (or load them) and import what the protocol uses, by one short run of the protocol with
    the program compiled from its first epoch, so that the timed runs use them from their first."""
    from plasticity.backends import numba_backend
    from plasticity.protocols import run_protocol

    waited = numba_backend.COMPILE_AFTER_SECONDS
    numba_backend.COMPILE_AFTER_SECONDS = 0.0  # compile now rather than step from Python first
    try:
        run_protocol("learn.capacity", {"n": n, "load": 1.0, "trials": trials, "epochs": 2}, seed=0)
    finally:
        numba_backend.COMPILE_AFTER_SECONDS = waited


def numpy_curve(n: int, loads: list[float], trials: int, epochs: int, dot: str = "einsum") -> list[float]:
    from plasticity.networks.learning import learning_data

    curve = []
    for k, load in enumerate(loads):
        rng = np.random.default_rng(k)
        patterns, targets = learning_data("perceptron", n, 1, int(round(load * n)), "binary", 0.1, False, trials, rng)
        curve.append(float(numpy_loop(patterns, targets, epochs, rng, dot).mean()))
    return curve


def numpy_vecdot_curve(n: int, loads: list[float], trials: int, epochs: int) -> list[float]:
    return numpy_curve(n, loads, trials, epochs, "vecdot")


def sweep_curve(workers: int) -> dict:
    """Time ``plasticity sweep`` of ``learning_curve.toml`` on ``workers`` processes; the success per load."""
    import xarray as xr

    experiment = Path(__file__).resolve().parent / "learning_curve.toml"
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "curve.zarr"
        command = [sys.executable, "-m", "plasticity.cli", "sweep", str(experiment), "-o", str(store), "--workers", str(workers), "-q"]
        load_before = os.getloadavg()
        seconds, cpu_seconds = timed_processes([command])
        data = xr.open_zarr(store)
        success = data["met"].mean(("repeat", "trial")).values.tolist()
        loads = data["load"].values.tolist()
    return {"command": " ".join(["plasticity", *command[3:]]), "seconds": seconds, "cpu_seconds": cpu_seconds, "workers": workers,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "loads": loads, "success": success}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="21 loads (1 .. 3) x 50 trials, N = 200, 1000 epochs")
    parser.add_argument("--loads", type=float, nargs="+", help="the loads (default 1 and 2)")
    parser.add_argument("--epochs", type=int, help="the budget of epochs (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stem", help="the results file's name (default learning, or learning_full)")
    parser.add_argument("--sweep", action="store_true", help="time the whole curve through plasticity sweep instead")
    parser.add_argument("--workers", type=int, default=2, help="processes of the sweep (--sweep)")
    args = parser.parse_args()
    import numba

    if args.sweep:
        warm_up(200, 50)  # the program in the disk cache, as after any earlier run of these sizes
        results = sweep_curve(args.workers)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "learning_sweep.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        return

    n, trials = 200, 50
    loads = [round(x, 3) for x in np.linspace(1.0, 3.0, 21)] if args.full else (args.loads or [1.0, 2.0])
    epochs = args.epochs or (1000 if args.full else 100)
    start = time.perf_counter()
    warm_up(n, trials)
    warmup = time.perf_counter() - start
    contenders = (("protocol", protocol_curve), ("numpy", numpy_curve), ("numpy_vecdot", numpy_vecdot_curve))
    timings: dict[str, list[float]] = {name: [] for name, _ in contenders}
    cpu: dict[str, list[float]] = {name: [] for name, _ in contenders}
    loadavg = []
    curves = {}
    for repeat in range(args.repeats):
        for name, function in contenders if repeat % 2 == 0 else contenders[::-1]:  # alternate who goes first
            loadavg.append(os.getloadavg()[0])
            clock, used = time.perf_counter(), time.process_time()
            curves[name] = function(n, loads, trials, epochs)
            timings[name].append(time.perf_counter() - clock)
            cpu[name].append(time.process_time() - used)
    median = {name: float(np.median(values)) for name, values in timings.items()}
    median_cpu = {name: float(np.median(values)) for name, values in cpu.items()}
    ratios = [b / a for a, b in zip(timings["protocol"], timings["numpy"])]  # per repeat, run next to each other
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "numba_threads": numba.config.NUMBA_NUM_THREADS, "python": platform.python_version(),
                    "loadavg_per_run": loadavg},
        "workload": {"n": n, "trials": trials, "loads": loads, "epochs": epochs, "rule": "perceptron"},
        "protocol_s": median["protocol"], "numpy_s": median["numpy"], "speedup": median["numpy"] / median["protocol"],
        "speedup_per_repeat": ratios, "speedup_cpu": median_cpu["numpy"] / median_cpu["protocol"],
        "numpy_vecdot_s": median["numpy_vecdot"], "speedup_vs_vecdot": median["numpy_vecdot"] / median["protocol"],
        "speedup_vs_vecdot_cpu": median_cpu["numpy_vecdot"] / median_cpu["protocol"],
        "target_speedup": 5.0, "warmup_s": warmup, "all_timings_s": timings, "all_cpu_s": cpu,
        "protocol_curve": curves["protocol"], "numpy_curve": curves["numpy"], "numpy_vecdot_curve": curves["numpy_vecdot"],
        "note": "medians of the repeats (wall and process CPU time), run alternately in one process, the order "
                "switched every repeat; warm-up (compile or cache load) excluded",
    }
    stem = args.stem or ("learning_full" if args.full else "learning")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = [
        "| workload | learn.capacity (numba) | numpy loop (einsum) | speedup (wall, range) | speedup (CPU time) "
        "| numpy loop (vecdot) | speedup (wall, CPU) | target |",
        "|---|---|---|---|---|---|---|---|",
        f"| perceptron rule, {len(loads)} loads x {trials} trials, N = {n}, <= {epochs} epochs | "
        f"{median['protocol']:.2f} s | {median['numpy']:.2f} s | {median['numpy'] / median['protocol']:.1f}x "
        f"({min(ratios):.1f}-{max(ratios):.1f}) | {median_cpu['numpy'] / median_cpu['protocol']:.1f}x | "
        f"{median['numpy_vecdot']:.2f} s | {results['speedup_vs_vecdot']:.1f}x, {results['speedup_vs_vecdot_cpu']:.1f}x | 5x |",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(table) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Learning capacity benchmark: the ``learn.capacity`` protocol against a numpy loop, side by side.

The workload is a capacity curve of the perceptron rule: random +-1 dichotomies of
``p = load * N`` items, N inputs, every trial its own data set, items shuffled per trial every
epoch, learning stopped per trial once every item is right, at most ``epochs`` epochs.

- ``protocol``: ``learn.capacity`` on the numba backend, in this process; the data sets are
  presented as compiled chunks (``NumbaEngine.run_presented``), the updates counted per step.
  A first point of the same sizes runs before the timing, so compiling (or loading the cached
  program) is excluded and reported on its own.
- ``numpy``: the straightforward numpy loop vectorised over trials: per step one batched dot
  product, the mistake test and the update of the weights of the trials that err; per epoch a
  shuffled order per trial and the readout of every item.

Both run alternately ``repeats`` times (who goes first switches every repeat); the medians of
wall-clock and process CPU time count (the machine is shared: CPU time leaves out the waits
for a core), with the ratio of every repeat's pair. The default curve is a
part of the issue's (21 loads x 50 trials, N = 200, 1,000 epochs): 4 loads x 50 trials,
N = 200, at most 100 epochs; ``--full`` runs the whole one (about an hour of the numpy loop).

Run: ``python benchmarks/bench_learning.py`` (writes benchmarks/results/learning.json and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def numpy_loop(patterns: np.ndarray, targets: np.ndarray, epochs: int, rng: np.random.Generator) -> np.ndarray:
    """Perceptron rule per trial from zero weights; returns which trials got every item right."""
    trials, items, n = patterns.shape
    weights = np.zeros((trials, n))
    signs = targets[:, :, 0]
    rows = np.arange(trials)[:, None]
    met = (np.einsum("tn,tpn->tp", weights, patterns) * signs > 0).all(axis=1)
    for _ in range(epochs):
        if met.all():
            break
        order = np.argsort(rng.random((trials, items)), axis=1)
        shown, wanted = patterns[rows, order], signs[rows, order]
        for k in range(items):
            x, t = shown[:, k], wanted[:, k]
            wrong = (t * np.einsum("tn,tn->t", weights, x) <= 0) & ~met
            weights += (wrong * t)[:, None] * x
        met |= (np.einsum("tn,tpn->tp", weights, patterns) * signs > 0).all(axis=1)
    return met


def protocol_curve(n: int, loads: list[float], trials: int, epochs: int) -> list[float]:
    from plasticity.protocols import run_protocol

    return [float(run_protocol("learn.capacity", {"n": n, "load": load, "trials": trials, "epochs": epochs}, seed=k)["met"].mean())
            for k, load in enumerate(loads)]


def warm_up(n: int, trials: int) -> None:
    """Compile the kernels and the presentation program of these sizes into the disk cache (or load
    them), so that the timed protocol runs use it from their first epoch."""
    from plasticity.backends.numba_backend import COMPILE_AFTER_SECONDS
    from plasticity.networks.learning import learning_data, learning_network, train
    from plasticity.rules import get_rule
    from plasticity.simulation import Simulation

    patterns, targets = learning_data("perceptron", n, 1, n, "binary", 0.1, False, trials, np.random.default_rng(0))
    simulation = Simulation(learning_network(get_rule("perceptron"), "perceptron", n, 1), trials=trials)
    simulation.engine.stepped_seconds = COMPILE_AFTER_SECONDS
    train(simulation, patterns, targets, epochs=1, criterion=1.0, order="shuffled")


def numpy_curve(n: int, loads: list[float], trials: int, epochs: int) -> list[float]:
    from plasticity.networks.learning import learning_data

    curve = []
    for k, load in enumerate(loads):
        rng = np.random.default_rng(k)
        patterns, targets = learning_data("perceptron", n, 1, int(round(load * n)), "binary", 0.1, False, trials, rng)
        curve.append(float(numpy_loop(patterns, targets, epochs, rng).mean()))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="21 loads (1 .. 3) x 50 trials, N = 200, 1000 epochs")
    parser.add_argument("--loads", type=float, nargs="+", help="the loads (default 1, 1.5, 2, 2.5)")
    parser.add_argument("--epochs", type=int, help="the budget of epochs (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stem", help="the results file's name (default learning, or learning_full)")
    args = parser.parse_args()
    import numba

    n, trials = 200, 50
    loads = [round(x, 3) for x in np.linspace(1.0, 3.0, 21)] if args.full else (args.loads or [1.0, 1.5, 2.0, 2.5])
    epochs = args.epochs or (1000 if args.full else 100)
    start = time.perf_counter()
    warm_up(n, trials)
    warmup = time.perf_counter() - start
    timings: dict[str, list[float]] = {"protocol": [], "numpy": []}
    cpu: dict[str, list[float]] = {"protocol": [], "numpy": []}
    loadavg = []
    curves = {}
    for repeat in range(args.repeats):
        contenders = (("protocol", protocol_curve), ("numpy", numpy_curve))
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
        "target_speedup": 5.0, "warmup_s": warmup, "all_timings_s": timings, "all_cpu_s": cpu,
        "protocol_curve": curves["protocol"], "numpy_curve": curves["numpy"],
        "note": "medians of the repeats (wall and process CPU time), run alternately in one process, the order "
                "switched every repeat; warm-up (compile or cache load) excluded",
    }
    stem = args.stem or ("learning_full" if args.full else "learning")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = [
        "| workload | learn.capacity (numba) | numpy loop over trials | speedup (wall) | speedup (CPU time) | target |",
        "|---|---|---|---|---|---|",
        f"| perceptron rule, {len(loads)} loads x {trials} trials, N = {n}, <= {epochs} epochs | "
        f"{median['protocol']:.2f} s | {median['numpy']:.2f} s | {median['numpy'] / median['protocol']:.1f}x "
        f"({min(ratios):.1f}-{max(ratios):.1f}) | {median_cpu['numpy'] / median_cpu['protocol']:.1f}x | 5x |",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(table) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

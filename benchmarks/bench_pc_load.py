"""Predictive-coding training under load: how the thread settings degrade when a core is busy.

Issue 18: under load from another program (a core taken away) pc training fell from about 17k to
4.4k samples/s, where pcx on the same machine held 7.1k; the defaults must degrade gracefully.

Each configuration (environment variables for numba's threads and the OpenMP runtimes) trains in a
fresh process: sizes [784, 256, 256, 10], tanh, batch 128, T = 20, float32, numba backend, compiled
step programs at once; samples per second over ``--batches`` batches after one batch of warm-up.
Every configuration runs without and with a competitor: a separate process spinning on one core
(``while True: pass``) started before the training process and stopped after it. Rounds alternate
over all (configuration, competitor) pairs, so the load other programs put on the machine falls on
all of them alike; the 1-minute load average before each run is recorded, and the table gives
medians over the rounds (and the best).

``default`` is what a user who sets nothing gets (the package's thread defaults, see
``plasticity/__init__.py``); ``old default`` is libgomp's own default when no wait policy is set
(spin about 3 ms, ``GOMP_SPINCOUNT=300000``), which the package used before it set one.

Usage: ``python benchmarks/bench_pc_load.py [--batches 15] [--rounds 3] [--configurations default
"old default" ...] [--name pc_load]``; writes ``benchmarks/results/NAME.json`` and ``NAME.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _results import write_results


#: Environment variables per configuration; a variable set to None is removed from the environment.
_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
CONFIGURATIONS = {
    "default": dict.fromkeys(_WAIT),
    "old default": {**dict.fromkeys(_WAIT), "GOMP_SPINCOUNT": "300000"},
    "passive": {**dict.fromkeys(_WAIT), "OMP_WAIT_POLICY": "PASSIVE"},
    "short spin": {**dict.fromkeys(_WAIT), "GOMP_SPINCOUNT": "10000"},
    "one thread": {**dict.fromkeys(_WAIT), "NUMBA_NUM_THREADS": "1"},
    "workqueue": {**dict.fromkeys(_WAIT), "NUMBA_THREADING_LAYER": "workqueue"},
}
DESCRIPTIONS = {
    "default": "the package's default (nothing set)",
    "old default": "libgomp's default spin, GOMP_SPINCOUNT=300000 (before this change)",
    "passive": "OMP_WAIT_POLICY=PASSIVE",
    "short spin": "GOMP_SPINCOUNT=10000",
    "one thread": "NUMBA_NUM_THREADS=1",
    "workqueue": "NUMBA_THREADING_LAYER=workqueue",
}

TRAIN = """
import json, sys, time
import numpy as np
import numba
from plasticity.backends import numba_backend
numba_backend.COMPILE_AFTER_SECONDS = 0.0
from plasticity.networks.predictive_coding import PredictiveCodingModel
batches = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.random((batches + 1, 128, 784)).astype(np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (batches + 1, 128))]
model = PredictiveCodingModel([784, 256, 256, 10], activation="tanh", mode="pc", gamma=0.1, lr=0.01, optimizer="sgd",
                              batch=128, backend="numba", dtype="float32", seed=0)
model.train_batch(x[0], y[0], 20)
start = time.perf_counter()
for k in range(1, batches + 1):
    model.train_batch(x[k], y[k], 20)
seconds = time.perf_counter() - start
print(json.dumps({"samples_per_s": batches * 128 / seconds, "layer": numba.threading_layer(), "threads": numba.get_num_threads()}))
"""


def train(environment: dict, batches: int, competitor: bool) -> dict:
    env = dict(os.environ)
    for key, value in environment.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    load = os.getloadavg()[0]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
    try:
        done = subprocess.run([sys.executable, "-c", TRAIN, str(batches)], env=env, capture_output=True, text=True, check=False)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_average": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configurations", nargs="+", default=["default", "old default"], choices=list(CONFIGURATIONS))
    parser.add_argument("--name", default="pc_load")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs: dict[str, dict[str, list]] = {name: {"alone": [], "competitor": []} for name in args.configurations}
    pairs = [(name, competitor) for name in args.configurations for competitor in (False, True)]
    for round_ in range(args.rounds):
        for name, competitor in pairs if round_ % 2 == 0 else pairs[::-1]:
            result = train(CONFIGURATIONS[name], args.batches, competitor)
            runs[name]["competitor" if competitor else "alone"].append(result)
            print(f"{name}, {'competitor' if competitor else 'alone'}: {result['samples_per_s']:.0f} samples/s "
                  f"({result['layer']}, {result['threads']} threads)", flush=True)
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
              "load_before": load_before, "load_after": os.getloadavg(), "batches": args.batches, "rounds": args.rounds,
              "configurations": {name: CONFIGURATIONS[name] for name in args.configurations}, "runs": runs}
    loads = [r["load_average"] for found in runs.values() for side in found.values() for r in side]
    lines = [
        "# pc training under load: [784, 256, 256, 10], batch 128, T = 20, numba",
        "",
        f"{report['date']}, {report['cpus']} CPUs, 1-minute load average {min(loads):.1f}-{max(loads):.1f} before the runs "
        f"(median {statistics.median(loads):.1f}); medians (best) of {args.rounds} alternating rounds, {args.batches} batches "
        "each; samples per second.",
        "",
        "| configuration | threading layer, threads | alone | with a competitor on one core | competitor / alone |",
        "|---|---|---:|---:|---:|",
    ]
    for name, found in runs.items():
        alone = [r["samples_per_s"] for r in found["alone"]]
        loaded = [r["samples_per_s"] for r in found["competitor"]]
        first = found["alone"][0]
        lines.append(f"| {name}: {DESCRIPTIONS[name]} | {first['layer']}, {first['threads']} | {statistics.median(alone):,.0f} "
                     f"({max(alone):,.0f}) | {statistics.median(loaded):,.0f} ({max(loaded):,.0f}) | "
                     f"{statistics.median(loaded) / statistics.median(alone):.2f} |")
    write_results(args.name, report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

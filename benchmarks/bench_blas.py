"""The numba backend's BLAS: MKL (from torch) against scipy's OpenBLAS, on predictive coding training.

The library is chosen once per process (``PLASTICITY_BLAS``), so each configuration runs in its
own process; the processes alternate (MKL, scipy, MKL, scipy, ...) and each configuration keeps
its best, so that both see the same machine. Configurations: batch 128 (the issue-7 benchmark's
size) and 1024 (where numba's unit kernels run threaded, from 2^18 elements), each on one thread
(``NUMBA_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``) and on the libraries' default threads.
Sizes [784, 256, 256, 10], tanh, T = 20, float32, random data; numba compiles its step program at
once (as in ``bench_pc.py``).

Usage: ``python benchmarks/bench_blas.py [--rounds 3]``; writes ``benchmarks/results/blas.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (128, 1024)
LIBRARIES = ("mkl", "scipy")
_CHILD = """
import json, sys, time
import numpy as np
import plasticity.backends.numba_backend as numba_backend
from plasticity.backends import blas
from plasticity.networks.predictive_coding import PredictiveCodingModel
numba_backend.COMPILE_AFTER_SECONDS = 0.0
batch = int(sys.argv[1])
model = PredictiveCodingModel([784, 256, 256, 10], mode="pc", gamma=0.1, lr=0.01, batch=batch, seed=0)
rng = np.random.default_rng(0)
x = rng.standard_normal((4, batch, 784)).astype(np.float32)
y = rng.standard_normal((4, batch, 10)).astype(np.float32)
model.train_batch(x[0], y[0], 20)
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    for b in range(4):
        model.train_batch(x[b], y[b], 20)
    best = min(best, (time.perf_counter() - start) / 4)
print(json.dumps({"samples_per_s": batch / best, "blas": blas.BLAS}))
"""


def _run(library: str, batch: int, one_thread: bool) -> dict:
    env = {**os.environ, "PLASTICITY_BLAS": library}
    for name in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    if one_thread:
        env.update(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(batch)], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[tuple[int, bool, str], float] = {}
    names: dict[str, str] = {}
    for _ in range(args.rounds):
        for batch in BATCHES:
            for one_thread in (True, False):
                for library in LIBRARIES:
                    found = _run(library, batch, one_thread)
                    names[library] = found["blas"]
                    key = (batch, one_thread, library)
                    best[key] = max(best.get(key, 0.0), found["samples_per_s"])
                    print(f"batch {batch:5d} {'1 thread ' if one_thread else 'default  '} {library:5s} "
                          f"{found['samples_per_s']:9.0f} samples/s", flush=True)
    rows = [
        {"batch": batch, "threads": "1" if one_thread else "default", "mkl_samples_per_s": best[(batch, one_thread, "mkl")],
         "scipy_samples_per_s": best[(batch, one_thread, "scipy")],
         "mkl_gain": best[(batch, one_thread, "mkl")] / best[(batch, one_thread, "scipy")]}
        for batch in BATCHES for one_thread in (True, False)
    ]
    from plasticity.provenance import now_iso

    report = {"benchmark": "blas", "date": now_iso(), "host": platform.node(), "cpus": os.cpu_count(),
              "rounds": args.rounds, "libraries": names, "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "blas.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# The numba backend's BLAS: MKL against scipy's OpenBLAS",
        "",
        f"pc training (T = 20), sizes [784, 256, 256, 10], tanh, float32; {os.cpu_count()} CPUs, measured "
        f"{report['date']}, best of {args.rounds} alternating processes per configuration.",
        "",
        "| batch | threads | MKL samples/s | scipy's BLAS samples/s | MKL / scipy |",
        "|---:|---|---:|---:|---:|",
        *[f"| {row['batch']} | {row['threads']} | {row['mkl_samples_per_s']:.0f} | {row['scipy_samples_per_s']:.0f} | "
          f"{row['mkl_gain']:.2f} |" for row in rows],
        "",
        *[f"- {library}: {name}" for library, name in names.items()],
        "",
    ]
    (RESULTS / "blas.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()

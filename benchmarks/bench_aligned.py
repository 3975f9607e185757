"""The numba backend's products on 64-byte-aligned operands against numpy's own allocation.

numpy places a large array's data 16 bytes past a page boundary; the engine now allocates every
state array and drive buffer on a 64-byte boundary (``plasticity/_aligned.py``). Each shape is
one product of the engine (``plasticity.backends.blas.gemm``, out = a @ b.T as a drive is
computed: a the presynaptic state (trials, pre), b the weights (post, pre)), timed on operands
from ``aligned_empty`` and from ``numpy.empty`` alternately, in ``--processes`` fresh processes
(the placement of large arrays in memory varies between processes), on one BLAS thread; a
process's time per shape is the median of ``--repeats`` products; the table gives medians over
processes. Shapes: the Vector-HaSH decoder and encoder (1600 cues, 400 place, 3600 sensory),
synchronous Hopfield recall (256 cues, N = 2000), a predictive-coding layer (batch 128, 784 to
256) and a square product of 2048.

Usage: ``python benchmarks/bench_aligned.py [--processes 5] [--repeats 7]``; writes
``benchmarks/results/aligned.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

from _results import write_results

SHAPES = {
    "Vector-HaSH decoder (1600 x 400) @ (400 x 3600)": (1600, 400, 3600),
    "Vector-HaSH encoder (1600 x 3600) @ (3600 x 400)": (1600, 3600, 400),
    "Hopfield sync recall (256 x 2000) @ (2000 x 2000)": (256, 2000, 2000),
    "pc layer (128 x 784) @ (784 x 256)": (128, 784, 256),
    "square (2048 x 2048) @ (2048 x 2048)": (2048, 2048, 2048),
}

_CHILD = """
import json, statistics, sys, time
import numpy as np
from plasticity._aligned import aligned_empty
from plasticity.backends import blas
shapes, dtypes, repeats = json.loads(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3])
rng = np.random.default_rng(0)
def operands(m, k, n, dtype, aligned):
    make = aligned_empty if aligned else np.empty
    a, b, out = make((m, k), dtype), make((n, k), dtype), make((m, n), dtype)
    a[...] = rng.standard_normal((m, k)); b[...] = rng.standard_normal((n, k))
    return a, b, out
result = {}
for name, (m, k, n) in shapes.items():
    for dtype in dtypes:
        sets = {aligned: operands(m, k, n, dtype, aligned) for aligned in (True, False)}
        times = {True: [], False: []}
        for _ in range(repeats):
            for aligned in (True, False) if len(times[True]) % 2 == 0 else (False, True):
                a, b, out = sets[aligned]
                start = time.perf_counter()
                blas.gemm(1.0, a, b.T, 0.0, out)
                times[aligned].append(time.perf_counter() - start)
        result[f"{name} {dtype}"] = {"aligned_s": statistics.median(times[True]), "numpy_s": statistics.median(times[False]),
                                     "gflops_aligned": 2 * m * k * n / statistics.median(times[True]) / 1e9}
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, **{name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                   "OPENBLAS_NUM_THREADS")}}
    loads, runs = [], []
    for _ in range(args.processes):
        loads.append(round(os.getloadavg()[0], 2))
        output = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(SHAPES), "float32,float64", str(args.repeats)],
                                env=env, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    from plasticity.backends import blas
    from plasticity.provenance import now_iso

    table = {}
    for key in runs[0]:
        aligned = statistics.median(run[key]["aligned_s"] for run in runs)
        numpy_ = statistics.median(run[key]["numpy_s"] for run in runs)
        ratios = [run[key]["numpy_s"] / run[key]["aligned_s"] for run in runs]
        table[key] = {"aligned_s": round(aligned, 5), "numpy_s": round(numpy_, 5), "speedup_median": round(numpy_ / aligned, 3),
                      "speedup_per_process": [round(r, 3) for r in ratios],
                      "gflops_aligned": round(statistics.median(run[key]["gflops_aligned"] for run in runs), 1)}
    lines = [
        "# The engine's products on aligned operands (benchmarks/bench_aligned.py)",
        "",
        f"{blas.BLAS}; one thread; medians over {args.processes} fresh processes of the median of {args.repeats} "
        f"products each; 1-minute load average {min(loads)}-{max(loads)}.",
        "",
        "| product | dtype | 64-byte aligned s | numpy's allocation s | speed-up (per process) | GFLOP/s aligned |",
        "|---|---|---:|---:|---|---:|",
    ]
    for key, row in table.items():
        name, dtype = key.rsplit(" ", 1)
        lines.append(f"| {name} | {dtype} | {row['aligned_s']:.4f} | {row['numpy_s']:.4f} | {row['speedup_median']:.2f}x "
                     f"({', '.join(f'{r:.2f}' for r in row['speedup_per_process'])}) | {row['gflops_aligned']} |")
    write_results("aligned", {"benchmark": "aligned", "date": now_iso(), "cpu": platform.processor() or platform.machine(),
                              "blas": blas.BLAS, "processes": args.processes, "repeats": args.repeats,
                              "load_average": loads, "products": table}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""How long OpenBLAS's idle threads spin: the package's default against OpenBLAS's own.

``import plasticity`` sets ``OPENBLAS_THREAD_TIMEOUT=18`` (about 0.1 ms of spinning before an idle
thread of numpy's or scipy's OpenBLAS sleeps) unless the user set it; OpenBLAS's own default, 28,
is about 0.1 s (``plasticity/_threads.py``). Measured side by side in alternating fresh
processes, the package's default against ``OPENBLAS_THREAD_TIMEOUT=28`` set by the user (which
the package keeps), each process importing numpy first (the usual order: numpy's pool is then
restarted by the import):

1. what the default is for: models that multiply with numpy or scipy and then run the engine's
   kernels, here Vector-HaSH's two protocols (storage by the pseudo-inverse fast path, recall on
   the numba engine), ``trials = 2``, and the Hopfield capacity protocol with the pseudo-inverse
   rule (N = 500, load 0.3, 10 trials: storage by the Cholesky fast path, asynchronous recall on
   its numba kernel), seconds a call;
2. what it could cost: numpy products alone, where a short spin means waking threads for the
   next product: (128, 256) x (256, 256) float32 back to back, the same with some Python work
   between products (a simulation loop), and a (1000, 1000) x (1000,) float64 product back to back,
   microseconds a product.

Usage: ``python benchmarks/bench_openblas_wait.py [--rounds 4]``; writes
``benchmarks/results/openblas_wait.json`` and ``openblas_wait.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from _results import write_results
from plasticity.provenance import now_iso

#: One process's measurements, printed as JSON: best and median of repeated timings.
MEASURE = r"""
import json, sys, time
import numpy as np
import plasticity
from plasticity._threads import openblas_default
from plasticity.protocols import run_protocol

def timings(function, repeats, inner=1):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        times.append((time.perf_counter() - start) / inner)
    return min(times), float(np.median(times))

rng = np.random.default_rng(0)
a32, b32 = rng.standard_normal((128, 256), dtype=np.float32), rng.standard_normal((256, 256), dtype=np.float32)
m64, v64 = rng.standard_normal((1000, 1000)), rng.standard_normal(1000)

def with_work():
    a32 @ b32
    sum(range(2000))

out = {"openblas_wait": openblas_default()}
for name in ("vector_hash.continuum", "vector_hash.sequence"):
    out[name] = timings(lambda: run_protocol(name, {"trials": 2}, seed=0), 5)
pseudoinverse = {"rule": "pseudoinverse", "n": 500, "load": 0.3, "trials": 10}
out["hopfield.capacity, pseudoinverse"] = timings(lambda: run_protocol("hopfield.capacity", pseudoinverse, seed=0), 5)
out["gemm_128x256x256"] = [t * 1e6 for t in timings(lambda: a32 @ b32, 7, 200)]
out["gemm_with_python_between"] = [t * 1e6 for t in timings(with_work, 7, 200)]
out["gemv_1000"] = [t * 1e6 for t in timings(lambda: m64 @ v64, 7, 200)]
print(json.dumps(out))
"""

CONTENDERS = {"package default (18)": None, "OpenBLAS default (28)": "28"}
WORKLOADS = {
    "vector_hash.continuum": "s",
    "vector_hash.sequence": "s",
    "hopfield.capacity, pseudoinverse": "s",
    "gemm_128x256x256": "us",
    "gemm_with_python_between": "us",
    "gemv_1000": "us",
}


def measure(timeout: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_THREAD_TIMEOUT"}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    result = subprocess.run([sys.executable, "-c", MEASURE], env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"the measuring process failed:\n{result.stderr}")
    return json.loads(result.stdout)


def markdown(report: dict) -> str:
    names = list(CONTENDERS)
    lines = [
        "# OpenBLAS's idle threads: the package's spin against OpenBLAS's own",
        "",
        f"{report['date']}, {report['rounds']} alternating rounds of fresh processes, load average "
        f"{report['load_average_at_start'][0]:.2f} at the start. Best over the rounds (median of the rounds' medians).",
        "",
        f"| workload | unit | {names[0]} | {names[1]} | OpenBLAS default / package default |",
        "|---|---|---|---|---|",
    ]
    for workload, unit in WORKLOADS.items():
        cells = [f"{report['best'][name][workload]:.4g} ({report['median'][name][workload]:.4g})" for name in names]
        lines.append(f"| {workload} | {unit} | {cells[0]} | {cells[1]} | {report['ratio_best'][workload]:.2f} "
                     f"({report['ratio_median'][workload]:.2f}) |")
    lines += ["", "A ratio above 1: the package's default is faster."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    report: dict = {"date": now_iso(), "rounds": args.rounds, "load_average_at_start": list(os.getloadavg()),
                    "cores": os.cpu_count(), "runs": {name: [] for name in CONTENDERS}}
    for _ in range(args.rounds):
        for name, timeout in CONTENDERS.items():
            report["runs"][name].append(measure(timeout))
    report["load_average_at_end"] = list(os.getloadavg())
    report["openblas_wait"] = {name: runs[0]["openblas_wait"] for name, runs in report["runs"].items()}
    report["best"] = {name: {w: min(run[w][0] for run in runs) for w in WORKLOADS}
                      for name, runs in report["runs"].items()}
    report["median"] = {name: {w: float(np.median([run[w][1] for run in runs])) for w in WORKLOADS}
                        for name, runs in report["runs"].items()}
    package, openblas = CONTENDERS
    report["ratio_best"] = {w: report["best"][openblas][w] / report["best"][package][w] for w in WORKLOADS}
    report["ratio_median"] = {w: report["median"][openblas][w] / report["median"][package][w] for w in WORKLOADS}
    write_results("openblas_wait", report, markdown(report))


if __name__ == "__main__":
    main()

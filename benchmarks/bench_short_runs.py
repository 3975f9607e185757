"""Short runs: does a call of a few steps cost what its steps cost?

Issue 18: ``Simulation.advance`` in calls of 4-10 steps lost 11-30% to the engine's own step at
N = 4096-8192 (each call recomputed a drive and scanned all of W for NaN); target: within 5%.

Measured side by side in one run, for an Oja projection ``inp -> out`` (``y = I``, N x N float32
weights, one trial, eta = 1e-6): ``k`` calls of ``advance(n)`` against one call of
``advance(k * n)`` on a second simulation built the same way (same seed, so both do the same
arithmetic), the two timed in alternating rounds (the order swapping every round) so that load
from other programs falls on both alike. The ratio short / long is 1.0 when a call costs only its
steps. Three ways a protocol calls ``advance``:

* ``free``: no inputs (the pre layer keeps its values);
* ``clamped``: the same input pattern given to every call (a pattern held over several phases);
* ``new``: a different input pattern each call (the long run gets the same patterns as an array,
  one per step, changing every ``n`` steps).

Usage: ``python benchmarks/bench_short_runs.py [--backends numba numpy torch] [--sizes 4096 8192] [--torch-sizes 4096]
[--steps 4 10] [--total 40] [--rounds 5] [--modes free clamped new] [--name short_runs]``; writes
``benchmarks/results/NAME.json`` and ``NAME.md``. The load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import plasticity as pl
from plasticity.provenance import now_iso
from plasticity.rules import get_rule

from _results import write_results



def oja_simulation(n: int, backend: str) -> pl.Simulation:
    inp = pl.Population(n, init={"x": pl.init.normal(1.0)}, name="inp")
    out = pl.Population(n, ["y = I"], name="out")
    rule = get_rule("oja").with_params(eta=1e-6)
    network = pl.Network([inp, out], [pl.Projection(inp, out, rule, name="ff", init={"w": pl.init.normal(0.01)})])
    return pl.Simulation(network, trials=1, backend=backend, seed=0, dtype="float32")


def measure(backend: str, n: int, per_call: int, total: int, mode: str, rounds: int) -> dict:
    calls = total // per_call
    patterns = np.random.default_rng(1).normal(size=(calls, 1, n))
    short, long = oja_simulation(n, backend), oja_simulation(n, backend)

    def inputs(call: int) -> dict:
        if mode == "free":
            return {}
        return {"inp.x": patterns[0 if mode == "clamped" else call]}

    def run_short() -> None:
        for call in range(calls):
            short.advance(per_call, inputs=inputs(call))

    whole = {} if mode == "free" else {"inp.x": np.repeat(patterns if mode == "new" else patterns[:1], per_call if mode == "new" else total, axis=0)}

    def run_long() -> None:
        long.advance(calls * per_call, inputs=whole)

    for function in (run_short, run_long):  # compile, warm the caches
        function()
    times: dict[str, list[float]] = {"short": [], "long": []}
    for round_ in range(rounds):
        order = [("short", run_short), ("long", run_long)]
        for name, function in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    ratios = [s / l for s, l in zip(times["short"], times["long"])]
    row = {
        "backend": backend, "n": n, "mode": mode, "steps_per_call": per_call, "calls": calls,
        "short_s": times["short"], "long_s": times["long"],
        "ratio_best": min(times["short"]) / min(times["long"]),
        "ratio_median": float(np.median(ratios)),
        "ms_per_step_long": 1e3 * min(times["long"]) / (calls * per_call),
    }
    engine = short.engine
    if backend == "numba":
        row["short_fused_steps"] = engine.fused_steps
        row["short_compiled_steps"] = engine.compiled_steps
    return row


def markdown(report: dict) -> str:
    lines = [
        "# Short runs: k calls of n steps against one call of k * n steps",
        "",
        f"{report['date']} on {report['machine']}, {report['cpus']} CPUs; load average "
        f"{report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after; "
        f"Oja, float32, one trial; {report['rounds']} alternating rounds.",
        "",
        "| backend | N | inputs | steps per call | calls | ms per step (long) | short / long, best | short / long, median of rounds |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['backend']} | {row['n']} | {row['mode']} | {row['steps_per_call']} | {row['calls']} "
            f"| {row['ms_per_step_long']:.2f} | {row['ratio_best']:.3f} | {row['ratio_median']:.3f} |"
        )
    lines += ["", "Target: a call of a few steps costs what its steps cost, short / long <= 1.05.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["numba", "numpy"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--numpy-sizes", type=int, nargs="+", default=[2048], help="sizes for the numpy backend (slower)")
    parser.add_argument("--torch-sizes", type=int, nargs="+", default=[4096], help="sizes for the torch backend (its default device)")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--total", type=int, default=40, help="steps per contender per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["free", "clamped", "new"], choices=["free", "clamped", "new"])
    parser.add_argument("--name", default="short_runs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = []
    for backend in args.backends:
        for n in {"numpy": args.numpy_sizes, "torch": args.torch_sizes}.get(backend, args.sizes):
            for mode in args.modes:
                for per_call in args.steps:
                    row = measure(backend, n, per_call, args.total, mode, args.rounds)
                    results.append(row)
                    print(f"{backend} N={n} {mode} {row['calls']}x{per_call}: short/long best {row['ratio_best']:.3f}, "
                          f"median {row['ratio_median']:.3f} ({row['ms_per_step_long']:.2f} ms/step)", flush=True)
    report = {
        "date": now_iso(), "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
        "rounds": args.rounds, "total_steps": args.total, "results": results,
    }
    write_results(args.name, report, markdown(report))


if __name__ == "__main__":
    main()

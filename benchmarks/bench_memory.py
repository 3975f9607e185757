"""Memory: building, stepping and recording a network against the size of its state.

Issue 18: building a network peaked at 4x the weight matrix (initial weights drawn in float64 and
cast), recording the weights once at 3.4x; target: a peak of at most 1.25x the state plus what is
recorded, on every backend.

Each backend runs in a fresh process (``--child``), which imports, loads its kernels on a small
network of the same form, then measures three phases of an Oja projection ``inp -> out``
(N x N float32 weights, one trial, ``w`` and ``x`` drawn from normal initialisers):

1. ``build``: ``pl.Simulation(...)``;
2. ``step``: ``advance(2)``;
3. ``record``: ``run(1, record={"ff.w": 1})`` (the dataset kept).

For every phase: the peak resident set above the resident set before the build (Linux
``VmHWM``, reset before each phase through ``/proc/self/clear_refs``), divided by the bytes that
phase must hold (the state; the state and the record); and the peak of memory numpy allocated
(tracemalloc, which does not see torch's own allocations). ``--before PATH`` runs the same children
on the code at ``PATH`` too (a checkout's directory put first on ``PYTHONPATH``), alternating.

Usage: ``python benchmarks/bench_memory.py [--n 16384] [--backends numpy numba torch]
[--before PATH] [--name memory]``; writes ``benchmarks/results/NAME.json`` and ``NAME.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _results import write_results



def _status(field: str) -> int:
    """A field of ``/proc/self/status`` in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # the peak resident set (VmHWM) restarts from now


def child(backend: str, n: int) -> dict:
    import tracemalloc

    import numpy as np

    import plasticity as pl
    from plasticity.rules import get_rule

    if backend == "torch":
        import torch  # noqa: F401  (imported before the baseline)

    def simulation(size: int) -> pl.Simulation:
        inp = pl.Population(size, init={"x": pl.init.normal(1.0)}, name="inp")
        out = pl.Population(size, ["y = I"], name="out")
        rule = get_rule("oja").with_params(eta=1e-6)
        projection = pl.Projection(inp, out, rule, name="ff", init={"w": pl.init.normal(0.01)})
        return pl.Simulation(pl.Network([inp, out], [projection]), trials=1, backend=backend, seed=0, dtype="float32")

    small = simulation(512)  # kernels compiled or loaded; the same form as the big one's
    small.advance(2)
    small.run(1, record={"ff.w": 1})
    del small
    weights = 4 * n * n
    state = weights + 4 * 4 * n  # the weights and inp.x, out.y, out.I (a drive buffer or two aside)
    tracemalloc.start()
    row: dict = {"backend": backend, "n": n, "weights_bytes": weights, "state_bytes": state}
    base = _status("VmRSS")

    def phase(name: str, work, holds: int) -> None:
        before = _status("VmRSS")
        tracemalloc.reset_peak()
        _reset_peak()
        start = time.perf_counter()
        kept = work()
        seconds = time.perf_counter() - start
        peak = _status("VmHWM") - base
        row[name] = {
            "seconds": seconds,
            "peak_above_start_bytes": peak,
            "peak_over_held": peak / holds,
            "rise_in_phase_bytes": _status("VmHWM") - before,
            "resident_after_bytes": _status("VmRSS") - base,
            "tracemalloc_peak_bytes": tracemalloc.get_traced_memory()[1],
            "held_bytes": holds,
        }
        return kept

    sim = phase("build", lambda: simulation(n), state)
    phase("step", lambda: sim.advance(2), state)
    dataset = phase("record", lambda: sim.run(1, record={"ff.w": 1}), state + weights)
    assert dataset["ff.w"].shape == (1, 1, n, n)
    return row


def run_child(backend: str, n: int, pythonpath: str | None) -> dict:
    environment = dict(os.environ)
    if pythonpath:
        environment["PYTHONPATH"] = pythonpath + os.pathsep + environment.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, __file__, "--child", backend, "--n", str(n)], env=environment,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(report: dict) -> str:
    gib = 2 ** 30
    lines = [
        f"# Memory: N = {report['n']}, float32 Oja projection, one trial",
        "",
        f"{report['date']} on {report['machine']}, {report['cpus']} CPUs, {report['memory_gib']:.0f} GiB; "
        f"load average {report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after. Peak resident set "
        "above the process's before the build, over what the phase must hold (the state; for `record` the state and "
        "the recorded weights).",
        "",
        "| code | backend | build peak / state | step peak / state | record peak / (state + record) | build s | resident after build (GiB) | numpy allocations' peak in build (GiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['code']} | {row['backend']} | {row['build']['peak_over_held']:.2f} | {row['step']['peak_over_held']:.2f} "
            f"| {row['record']['peak_over_held']:.2f} | {row['build']['seconds']:.1f} "
            f"| {row['build']['resident_after_bytes'] / gib:.2f} | {row['build']['tracemalloc_peak_bytes'] / gib:.2f} |"
        )
    lines += ["", "Target: every peak <= 1.25x what the phase holds.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--backends", nargs="+", default=["numpy", "numba", "torch"])
    parser.add_argument("--before", help="a checkout of the code before the change, measured alternately")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="memory")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    load_before = os.getloadavg()
    results = []
    for backend in args.backends:
        for code, path in [("after", None), ("before", args.before)] if args.before else [("after", None)]:
            row = run_child(backend, args.n, path)
            row["code"] = code
            results.append(row)
            print(f"{code} {backend}: build {row['build']['peak_over_held']:.2f}x, step {row['step']['peak_over_held']:.2f}x, "
                  f"record {row['record']['peak_over_held']:.2f}x", flush=True)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": f"{platform.machine()} {platform.system()}",
        "cpus": os.cpu_count(), "memory_gib": memory / 2 ** 30, "load_before": load_before, "load_after": os.getloadavg(),
        "n": args.n, "results": results,
    }
    write_results(args.name, report, markdown(report))


if __name__ == "__main__":
    main()

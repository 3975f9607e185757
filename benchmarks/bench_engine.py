"""Engine benchmark: the generated numba step on an Oja projection against the machine.

Measured side by side in one run (issue 3, DESIGN section 8), for N x N float32 weights
(trials = 1, N = 4096 and 8192), in synapse updates per second:

1. ``generated``: one full step of a default-order network ``inp -> out`` (``y = I``)
   with the built-in ``oja`` rule on the numba backend (the drive fused into the
   plasticity pass, which the inputs of the next step make possible);
2. ``handwritten``: a hand-written fused numba Oja kernel doing the same work (update
   row ``i`` and accumulate the next drive ``sum_j w_new[i, j] x_next[j]``, float32
   partial sums over blocks of 1024 columns added in float64);
3. ``numpy``: one step of the numpy backend;
4. ``bandwidth``: a numba read+write pass ``a = a * s + c`` over a float32 array of the
   same size, 8 bytes per element: the bound for a rule that reads and writes ``w``.

Every figure is the best of several repeats (other programs share the cores). Targets:
generated >= 0.9x handwritten, >= 0.7x the bandwidth bound, >= 10x numpy.

Usage: ``python benchmarks/bench_engine.py [--sizes 4096 8192] [--repeats 7]``; writes
``benchmarks/results/engine.json`` and ``benchmarks/results/engine.md``.
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

import plasticity as pl
from plasticity.provenance import now_iso
from plasticity.rules import get_rule

RESULTS = Path(__file__).resolve().parent / "results"
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(parallel=True, fastmath=FASTMATH, error_model="numpy")
def handwritten_oja(w, drive_now, x, x_next, eta, drive_next):
    """y = I; w += eta * y * (x - y * w); next drive = w_new @ x_next, in one pass over w.

    Written as well as we could: rows in parallel, each in blocks of 1024 columns (plain
    contiguous loops that vectorise), the drive's float32 partial sums added into float64
    once per block (the same numerical contract as the generated kernel).
    """
    npost, npre = w.shape
    for i in numba.prange(npost):
        y = drive_now[i]
        a = eta * y
        acc = 0.0
        for j0 in range(0, npre, 1024):
            j1 = min(j0 + 1024, npre)
            row = w[i, j0:j1]
            xs = x[j0:j1]
            xns = x_next[j0:j1]
            part = np.float32(0.0)
            for j in range(j1 - j0):
                v = row[j] + a * (xs[j] - y * row[j])
                row[j] = v
                part += v * xns[j]
            acc += part
        drive_next[i] = acc


@numba.njit(parallel=True, fastmath=FASTMATH)
def read_write_pass(a, scale, shift):
    rows, columns = a.shape
    for i in numba.prange(rows):
        row = a[i]
        for j in range(columns):
            row[j] = row[j] * scale + shift


def interleaved(functions: dict, repeats: int, inner: dict) -> dict[str, list[float]]:
    """Per-call times of each function, timed round-robin (the order rotating every round)
    so that load from other programs falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotate the order
            function = functions[name]
            start = time.perf_counter()
            for _ in range(inner[name]):
                function()
            times[name].append((time.perf_counter() - start) / inner[name])
    return times


def oja_engine(n: int, backend: str):
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(n, ["y = I"], name="out")
    rule = get_rule("oja").with_params(eta=1e-6)
    network = pl.Network([inp, out], [pl.Projection(inp, out, rule, name="ff", init={"w": 0.0})])
    return pl.Simulation(network, trials=1, backend=backend, seed=0, dtype="float32").engine


def measure(n: int, repeats: int, inner: int) -> dict:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(1, n)).astype(np.float32) for _ in range(2)]  # this step's input, the next one's
    synapses = n * n
    plastic = frozenset({"ff"})
    calls = {"generated": 0, "numpy": 0}

    def step(engine, name):
        """One step with input xs[k] and next input xs[1 - k], alternating, as in a run."""
        k = calls[name] % 2
        calls[name] += 1
        engine.step(1.0, {"inp.x": xs[k]}, plastic, {"inp.x": xs[1 - k]})

    array = np.ones((n, n), dtype=np.float32)
    w = np.full((n, n), 0.01, dtype=np.float32)
    drive_now = rng.normal(size=n).astype(np.float32)
    drive_next = np.zeros(n, dtype=np.float32)
    generated = oja_engine(n, "numba")
    generated.set("ff.w", 0.01)
    reference = oja_engine(n, "numpy")
    reference.set("ff.w", 0.01)
    functions = {
        "bandwidth": lambda: read_write_pass(array, np.float32(0.999), np.float32(0.001)),
        "handwritten": lambda: handwritten_oja(w, drive_now, xs[0][0], xs[1][0], np.float32(1e-6), drive_next),
        "generated": lambda: step(generated, "generated"),
        "numpy": lambda: step(reference, "numpy"),
    }
    for function in functions.values():  # compile; prime the fused drive
        function()
        function()
    fused_before = generated.fused_steps
    counts = {"bandwidth": inner, "handwritten": inner, "generated": inner, "numpy": 1}
    times = interleaved(functions, repeats, counts)
    assert generated.fused_steps - fused_before == repeats * inner, "the fused path was not taken"
    row: dict = {"n": n, "synapses": synapses}
    for name, values in times.items():
        row[f"{name}_updates_per_s"] = synapses / min(values)
        row[f"{name}_median_updates_per_s"] = synapses / float(np.median(values))
        row[f"{name}_times_s"] = values
    row["bandwidth_GBps"] = 8 * row["bandwidth_updates_per_s"] / 1e9
    best = row["generated_updates_per_s"]
    row["generated_vs_handwritten"] = best / row["handwritten_updates_per_s"]
    row["generated_vs_bandwidth"] = best / row["bandwidth_updates_per_s"]
    row["handwritten_vs_bandwidth"] = row["handwritten_updates_per_s"] / row["bandwidth_updates_per_s"]
    row["generated_vs_numpy"] = best / row["numpy_updates_per_s"]
    row["median_ratios"] = {
        "generated_vs_handwritten": row["generated_median_updates_per_s"] / row["handwritten_median_updates_per_s"],
        "generated_vs_bandwidth": row["generated_median_updates_per_s"] / row["bandwidth_median_updates_per_s"],
        "generated_vs_numpy": row["generated_median_updates_per_s"] / row["numpy_median_updates_per_s"],
    }
    row["spread"] = {name: max(values) / min(values) - 1 for name, values in times.items()}
    return row


def markdown(report: dict) -> str:
    lines = [
        "# Engine benchmark: Oja projection, float32, trials = 1",
        "",
        f"{report['date']} on {report['machine']} ({report['threads']} numba threads), numba {report['numba']}; "
        "best of the repeats; synapse updates per second.",
        "",
        "| N | generated numba step | hand-written fused kernel | numpy backend | read+write bound (GB/s) "
        "| generated / hand-written | generated / bound | generated / numpy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['n']} | {row['generated_updates_per_s']:.3g} | {row['handwritten_updates_per_s']:.3g} "
            f"| {row['numpy_updates_per_s']:.3g} | {row['bandwidth_updates_per_s']:.3g} ({row['bandwidth_GBps']:.1f}) "
            f"| {row['generated_vs_handwritten']:.2f} | {row['generated_vs_bandwidth']:.2f} "
            f"| {row['generated_vs_numpy']:.1f} |"
        )
    lines += [
        "",
        "Medians of the repeats (less sensitive to a lucky repeat of one contender):",
        "",
        "| N | generated | hand-written | numpy | bound | generated / hand-written | generated / bound | generated / numpy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        ratios = row["median_ratios"]
        lines.append(
            f"| {row['n']} | {row['generated_median_updates_per_s']:.3g} | {row['handwritten_median_updates_per_s']:.3g} "
            f"| {row['numpy_median_updates_per_s']:.3g} | {row['bandwidth_median_updates_per_s']:.3g} "
            f"| {ratios['generated_vs_handwritten']:.2f} | {ratios['generated_vs_bandwidth']:.2f} "
            f"| {ratios['generated_vs_numpy']:.1f} |"
        )
    lines += ["", "Targets: generated >= 0.9x hand-written, >= 0.7x the bound, >= 10x numpy.", ""]
    lines.append(
        "The read+write pass is the most erratic contender: some repeats reach far above its "
        "typical rate, so its best can overstate the bound; its median per N: "
        + ", ".join(f"{row['n']}: {8 * row['bandwidth_median_updates_per_s'] / 1e9:.1f} GB/s" for row in report["results"])
        + "."
    )
    lines.append("")
    lines.append("Spread of the repeats (slowest / fastest - 1):")
    for row in report["results"]:
        lines.append(f"- N = {row['n']}: " + ", ".join(f"{k} {v:.0%}" for k, v in row["spread"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=3)
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        row = measure(n, args.repeats, args.inner)
        results.append(row)
        print(
            f"N={n}: generated {row['generated_updates_per_s']:.3g}/s, hand-written {row['handwritten_updates_per_s']:.3g}/s, "
            f"numpy {row['numpy_updates_per_s']:.3g}/s, bound {row['bandwidth_updates_per_s']:.3g}/s "
            f"({row['bandwidth_GBps']:.1f} GB/s); generated/hand-written {row['generated_vs_handwritten']:.2f}, "
            f"/bound {row['generated_vs_bandwidth']:.2f}, /numpy {row['generated_vs_numpy']:.1f}",
            flush=True,
        )
    report = {
        "benchmark": "engine",
        "date": now_iso(),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, {os.cpu_count()} cores",
        "threads": numba.get_num_threads(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "repeats": args.repeats,
        "inner": args.inner,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "engine.md").write_text(markdown(report))


if __name__ == "__main__":
    main()

"""Rule-search benchmark: candidates evaluated per second by the generic polynomial kernel.

Measured side by side in one run on this machine (issue 22):

1. The generic kernel (:mod:`plasticity.search.kernel`) on the linear-association task at
   n = 16 (16 outputs, 8 pairs, 8 trials, 2,000 steps each): every deduplicated candidate of a
   grammar (x_pre, y_post, target_post, w, the constant 1, at most two operations: 2,330 rules,
   422 candidates) through the probe (100 steps) and the full run of those that survive, in
   this process on the machine's cores. Target: >= 50 candidates/s on 2 cores. CPU time is
   recorded beside wall time: on a machine other programs share, candidates per CPU-second
   times the cores is the rate the machine would give alone.
2. The engine on the same task, one ``plasticity.Simulation`` (numba) per candidate, as a
   search without the generic kernel would run: a few candidates, each with its own kernels
   to generate and compile (into an empty kernel cache, as new rules would be). The ratio of
   the two rates is the generic kernel's gain.
3. The whole ``plasticity.search`` (enumeration, a local Dask cluster of 2 workers, the store,
   the ranking) on the same grammar and task: candidates per second end to end.

Usage: ``python benchmarks/bench_search.py [--repeats 3] [--engine-candidates 4]``; writes
``benchmarks/results/search.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from plasticity.provenance import now_iso  # noqa: E402
from plasticity.search import Grammar, enumerate_rules  # noqa: E402
from plasticity.search.kernel import run_linear_layer  # noqa: E402
from plasticity.search.runner import SearchConfig, search  # noqa: E402
from plasticity.search.tasks import FAST_TASKS  # noqa: E402

TASK = {"n": 16, "m": 16, "load": 0.5, "steps": 2000, "trials": 8}
GRAMMAR = {"terms": ["x_pre", "y_post", "target_post", "w"], "constants": [1], "max_operations": 2}
ETA = 0.02
PROBE = 100


def kernel_rate(candidates, problem) -> dict[str, float]:
    """Probe and full run of every candidate, as one batch of the search runs them."""
    polynomials = [c.polynomial for c in candidates]
    etas = [ETA] * len(polynomials)
    wall, cpu = time.perf_counter(), time.process_time()
    _, probed = run_linear_layer(problem.data, polynomials, etas, steps=PROBE)
    alive = [p for p, at in zip(polynomials, probed) if (at < 0).all()]
    _, diverged_at = run_linear_layer(problem.data, alive, [ETA] * len(alive))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"candidates": len(polynomials), "survived_probe": len(alive), "diverged_later": int((diverged_at >= 0).any(1).sum()),
            "wall_s": wall, "cpu_s": cpu, "per_s": len(polynomials) / wall, "per_cpu_s": len(polynomials) / cpu}


def engine_rate(candidates, problem) -> dict[str, float]:
    """The same candidates, each as its own Simulation on numba (generated kernels compiled)."""
    import plasticity as pl

    data = problem.data
    trials, m, n = data.w0.shape
    rows = np.arange(trials)[None, :]
    inputs = {"input.x": data.patterns[rows, data.order.T], "output.target": data.targets[rows, data.order.T]}
    wall, cpu = time.perf_counter(), time.process_time()
    for candidate in candidates:
        rule = candidate.rule(ETA)
        source = pl.Population(n, init={"x": 0.0}, name="input")
        output = pl.Population(m, ["y = I"], init={"target": 0.0}, name="output")
        network = pl.Network([source, output], [pl.Projection(source, output, rule, source="x", init={"w": data.w0}, name="w")])
        simulation = pl.Simulation(network, trials=trials, dtype="float64", seed=0)
        try:
            simulation.run(data.steps, inputs=inputs)
        except pl.DivergenceError:
            pass
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"candidates": len(candidates), "wall_s": wall, "cpu_s": cpu, "per_s": len(candidates) / wall,
            "per_cpu_s": len(candidates) / cpu}


def end_to_end(folder: Path) -> dict[str, float]:
    config = SearchConfig.from_dict({"task": "association", "seed": 0, "grammar": GRAMMAR, "params": TASK,
                                     "search": {"learning_rates": [ETA], "batch": 64, "probe_steps": PROBE}})
    wall = time.perf_counter()
    result = search(config, folder / "search.zarr", workers=2, progress=False)
    wall = time.perf_counter() - wall
    first = result.ranking.isel(rank=0)
    return {"candidates": result.candidates, "wall_s": wall, "sweep_s": result.elapsed_s, "per_s": result.candidates / wall,
            "per_s_sweep": result.rate, "first": str(first["equations"].item()), "first_score": float(first["score"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine-candidates", type=int, default=4)
    parser.add_argument("--name", default="search")
    args = parser.parse_args()

    task = FAST_TASKS["association"]
    enumeration = enumerate_rules(Grammar.from_table(GRAMMAR), definitions=task.definition_polynomials())
    problem = task.problem(TASK, seed=0)
    run_linear_layer(problem.data, [enumeration.candidates[0].polynomial], [ETA], steps=1)  # compile (or load the cache)
    kernel = [kernel_rate(enumeration.candidates, problem) for _ in range(args.repeats)]
    # the engine's candidates: ones that survive the whole run, so that no run stops early
    _, at = run_linear_layer(problem.data, [c.polynomial for c in enumeration.candidates], [ETA] * len(enumeration.candidates))
    stable = [c for c, a in zip(enumeration.candidates, at) if (a < 0).all()]
    folder = Path(tempfile.mkdtemp(prefix="bench_search_"))
    try:
        # a kernel cache of its own: each new rule generates and compiles its kernels, as in a real search
        os.environ["PLASTICITY_CACHE_DIR"] = str(folder / "kernels")
        engine = engine_rate(stable[: args.engine_candidates], problem)
        whole = end_to_end(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    best = max(kernel, key=lambda r: r["per_s"])
    cores = len(os.sched_getaffinity(0))
    results = {
        "date": now_iso(), "host": platform.node(), "python": platform.python_version(), "cores": cores,
        "load_average": os.getloadavg(), "task": TASK, "grammar": GRAMMAR, "eta": ETA, "probe_steps": PROBE,
        "yielded": enumeration.total_yielded, "candidates": len(enumeration.candidates),
        "kernel": kernel, "engine": engine, "end_to_end": whole,
        "kernel_best_per_s": best["per_s"], "kernel_per_cpu_s_times_cores": best["per_cpu_s"] * cores,
        "kernel_over_engine": best["per_s"] / engine["per_s"],
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=2))
    lines = [
        f"# Rule search ({results['date']}, {platform.node()}, {cores} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in results['load_average'])})",
        "",
        f"Linear association n = 16, m = 16, 8 pairs, 8 trials, 2,000 steps; grammar {GRAMMAR}: "
        f"{enumeration.total_yielded:,} rules, {len(enumeration.candidates)} candidates.",
        "",
        "| what | candidates | wall s | candidates/s | per CPU-s x cores |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(kernel):
        lines.append(f"| generic kernel, repeat {i} | {r['candidates']} ({r['survived_probe']} past the probe) | "
                     f"{r['wall_s']:.2f} | {r['per_s']:.1f} | {r['per_cpu_s'] * cores:.1f} |")
    lines.append(f"| engine, a Simulation per candidate (numba) | {engine['candidates']} | {engine['wall_s']:.2f} | "
                 f"{engine['per_s']:.2f} | {engine['per_cpu_s'] * cores:.2f} |")
    lines.append(f"| plasticity search end to end, 2 workers | {whole['candidates']} | {whole['wall_s']:.2f} | "
                 f"{whole['per_s']:.1f} | |")
    lines += ["", f"Generic kernel / engine: {results['kernel_over_engine']:.0f}x. First in the ranking: "
              f"`{whole['first']}` (score {whole['first_score']:.4f})."]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

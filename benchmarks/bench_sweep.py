"""Sweep machinery benchmark: parallel speed-up and per-point overhead.

Measured side by side in one run on this machine (issue 6):

1. A CPU-bound 40-point sweep (``sweep_protocols:busy``, single-threaded numpy
   work) with 1 and with 2 local worker processes: end to end (``workers=N``,
   cluster start-up included) and on an already started cluster
   (``scheduler=ADDRESS``; its workers started as the sweep starts its own).
   Target: 2 workers >= 1.6x faster than 1. As a control, the same points on a
   started pool of 1 and 2 bare processes (no sweep machinery): the speed-up the
   machine itself allows at the time (other work on a shared machine lowers it).
2. The per-point overhead of the machinery (scheduling, transfer, writing the
   point's region and flags): a sweep of a protocol that does almost nothing,
   on one worker; the overhead of a point is the interval between successive
   point completions minus the point's own run time. Target: median < 50 ms.

3. A short real sweep, the Hebbian capacity curve of issue 18 (``hopfield.capacity``, 21
   loads x 50 trials, N = 1000, numba): ``plasticity sweep --workers 2`` (points on two
   threads of the command's process) against the same points run by a plain loop of
   ``run_protocol`` calls in one process; beside them the sweep with points on threads turned
   off (the process workers it had before), ``--workers 0``, and two bare loop processes
   started together, each running every other point (what two processes give without the
   sweep). Each contender is a fresh process timed from its start to its end (imports
   included), on a warm kernel cache, in alternating rounds (best and median kept, and the
   CPU time the processes used). Target: 2 workers faster than the loop.

Usage: ``python benchmarks/bench_sweep.py [--points 40] [--iterations 400] [--curve-rounds 3]``
(``--only-curve`` runs part 3 alone, ``--only-machinery`` parts 1 and 2, each keeping the
other parts' results in the file);
writes ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the sweep_protocols module

from _processes import timed_processes  # noqa: E402
from plasticity.experiment import parse_experiment  # noqa: E402
from plasticity.provenance import now_iso  # noqa: E402
from plasticity.sweep import local_worker_environ, default_workers, run_sweep  # noqa: E402


def busy_experiment(points: int, iterations: int):
    return parse_experiment(
        f"""
protocol = "sweep_protocols:busy"
backend = "numpy"
seed = 0
[params]
iterations = {iterations}
[sweep]
size = [100000]
repeats = {points}
"""
    )


def timed_sweep(experiment, folder: Path, name: str, **kwargs) -> tuple[float, Path]:
    path = folder / f"{name}.zarr"
    start = time.perf_counter()
    summary = run_sweep(experiment, path, progress=False, **kwargs)
    elapsed = time.perf_counter() - start
    assert summary.done == summary.n_points, str(summary)
    return elapsed, path


def _busy_point(args: tuple[int, int]) -> float:
    import sweep_protocols

    index, iterations = args
    return float(sweep_protocols.busy(iterations=iterations, seed=index)["x_mean"])


def bare_processes_s(processes: int, points: int, iterations: int) -> float:
    """The same points on a started pool of bare processes: what the machine allows, without the sweep."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_busy_point, [(0, 1)] * processes)  # start and import before timing
        start = time.perf_counter()
        pool.map(_busy_point, [(i, iterations) for i in range(points)], chunksize=1)
        return time.perf_counter() - start


def overhead_ms(path: Path) -> dict[str, float]:
    store = xr.open_zarr(path).load()
    finished = np.sort(store["point_finished_at"].values.ravel())
    intervals = np.diff(finished)
    compute = float(np.median(store["point_wall_time"].values))
    per_point = (intervals - compute) * 1e3
    return {
        "median_ms": round(float(np.median(per_point)), 2),
        "p90_ms": round(float(np.percentile(per_point, 90)), 2),
        "point_compute_median_ms": round(compute * 1e3, 3),
    }


CURVE = """
protocol = "hopfield.capacity"
backend = "numba"
seed = 0
[params]
n = 1000
trials = 50
[sweep]
load = {start = 0.02, stop = 0.30, num = 21}
"""

LOOP = """
import sys
from plasticity.experiment import load_experiment
from plasticity.protocols import run_protocol
from plasticity.sweep import Grid, point_seed

experiment = load_experiment("curve.toml")
grid = Grid.from_experiment(experiment)
part, parts = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (0, 1)
for index in range(part, grid.size, parts):
    run_protocol(experiment.protocol, {**experiment.params, **grid.params(index)}, backend=experiment.backend,
                 seed=point_seed(experiment.seed, index))
"""

#: ``plasticity sweep`` with points on threads turned off: the process workers every protocol had before.
PROCESSES = """
import sys
import plasticity.sweep
from plasticity.cli import main

plasticity.sweep.threads_run_points_at_once = lambda: False
sys.exit(main(sys.argv[1:]))
"""


def capacity_curve(folder: Path, rounds: int) -> dict[str, object]:
    """``plasticity sweep`` of the capacity curve on 2 workers against a one-process loop."""
    started, loads_at_start = now_iso(), [round(x, 2) for x in os.getloadavg()]
    (folder / "curve.toml").write_text(CURVE)
    loop = [sys.executable, "-c", LOOP]
    sweep = [sys.executable, "-m", "plasticity.cli", "sweep", "curve.toml", "-q"]
    processes = [sys.executable, "-c", PROCESSES, "sweep", "curve.toml", "-q"]
    timed_processes([loop], folder)  # compiles the kernels into the disk cache: every timing below loads them
    contenders = {
        "loop": lambda out: [loop],
        # Two bare loop processes started together, each running every other point: what two
        # processes give without any sweep machinery (each pays the imports and kernel loads).
        "loop_two_processes": lambda out: [loop + ["0", "2"], loop + ["1", "2"]],
        "sweep_workers_2": lambda out: [sweep + ["-o", out, "--workers", "2"]],
        "sweep_workers_2_processes": lambda out: [processes + ["-o", out, "--workers", "2"]],
        "sweep_workers_0": lambda out: [sweep + ["-o", out, "--workers", "0"]],
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name, commands in contenders.items():
            out = f"curve-{name}-{round_}.zarr"
            wall, used = timed_processes(commands(out), folder)
            times[name].append(wall)
            cpu[name].append(used)
            shutil.rmtree(folder / out, ignore_errors=True)
    loads = [round(x, 2) for x in os.getloadavg()]
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    return {
        "date": started,
        "load_average_at_start": loads_at_start,
        "load_average_at_end": loads,
        "experiment": CURVE.strip(),
        "rounds": rounds,
        "seconds": {name: [round(t, 3) for t in values] for name, values in times.items()},
        "cpu_seconds": {name: [round(t, 2) for t in values] for name, values in cpu.items()},
        "best_s": {name: round(t, 3) for name, t in best.items()},
        "median_s": {name: round(t, 3) for name, t in median.items()},
        "loop_over_sweep_workers_2_best": round(best["loop"] / best["sweep_workers_2"], 3),
        "loop_over_sweep_workers_2_median": round(median["loop"] / median["sweep_workers_2"], 3),
        "loop_over_sweep_workers_2_processes_median": round(median["loop"] / median["sweep_workers_2_processes"], 3),
        "target": "sweep on 2 workers faster than the loop (ratio > 1)",
    }


def _cluster(workers: int) -> Any:
    """A local cluster of ``workers`` single-threaded processes, started as the sweep starts its own
    (without dask's ``MALLOC_TRIM_THRESHOLD_``, which dask also leaves in this process's
    environment, where the bare processes would inherit it)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.ERROR)


def machinery(folder: Path, args: argparse.Namespace) -> dict[str, object]:
    """Parts 1 and 2: the speed-up of a CPU-bound sweep and the overhead per point."""
    results: dict[str, object] = {}
    busy = busy_experiment(args.points, args.iterations)
    end_to_end = {n: timed_sweep(busy, folder, f"e2e{n}", workers=n)[0] for n in (1, 2)}
    # Alternate 1 and 2 workers and keep the best of each: load from other processes on a
    # shared machine then hits both sides alike.
    started: dict[int, float] = {}
    for round_ in range(args.rounds):
        for n in (1, 2):
            with _cluster(n) as cluster:
                elapsed = timed_sweep(busy, folder, f"started{n}-{round_}", scheduler=cluster.scheduler_address)[0]
            started[n] = min(started.get(n, np.inf), elapsed)
    bare = {n: min(bare_processes_s(n, args.points, args.iterations) for _ in range(args.rounds)) for n in (1, 2)}
    point = float(np.median(xr.open_zarr(folder / "e2e1.zarr")["point_wall_time"].values))
    results["cpu_bound"] = {
        "points": args.points,
        "point_compute_s": round(point, 4),
        "end_to_end_s": {str(n): round(t, 3) for n, t in end_to_end.items()},
        "end_to_end_speedup_2_vs_1": round(end_to_end[1] / end_to_end[2], 3),
        "started_cluster_rounds": args.rounds,
        "started_cluster_s": {str(n): round(t, 3) for n, t in started.items()},
        "started_cluster_speedup_2_vs_1": round(started[1] / started[2], 3),
        "bare_processes_s": {str(n): round(t, 3) for n, t in bare.items()},
        "bare_processes_speedup_2_vs_1": round(bare[1] / bare[2], 3),
        "target_speedup": 1.6,
    }
    trivial = parse_experiment(
        f'protocol = "sweep_protocols:noisy_mean"\nbackend = "numpy"\n[params]\nn = 4\n'
        f"[sweep]\nrepeats = {args.overhead_points}\n"
    )
    with _cluster(1) as cluster:
        _, path = timed_sweep(trivial, folder, "overhead_cluster", scheduler=cluster.scheduler_address)
    results["overhead_one_worker"] = {**overhead_ms(path), "points": args.overhead_points, "target_ms": 50}
    _, path = timed_sweep(trivial, folder, "overhead_in_process", workers=0)
    results["overhead_in_process"] = {**overhead_ms(path), "points": args.overhead_points}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40)
    # 400: points of about 0.4 s, 16 s in all, well above what makes the command start workers
    # (twice plasticity.sweep.WORKER_START_S); with fewer it runs the points alone, by design.
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--overhead-points", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the started-cluster timing (best kept)")
    parser.add_argument("--curve-rounds", type=int, default=3, help="alternating rounds of the capacity curve")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--only-curve", action="store_true", help="run part 3 alone; keep the rest of the file")
    only.add_argument("--only-machinery", action="store_true", help="run parts 1 and 2; keep part 3's results")
    args = parser.parse_args()
    out = HERE / "results" / "sweep.json"
    results: dict[str, object] = json.loads(out.read_text()) if out.exists() else {}
    if not args.only_curve:  # part 3 keeps when and where it was measured in its own entry
        results.update({"date": now_iso(), "host": platform.node(), "cores": default_workers(),
                        "python": platform.python_version(),
                        "load_average_at_start": [round(x, 2) for x in os.getloadavg()]})
    folder = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        if not args.only_machinery:
            results["capacity_curve"] = capacity_curve(folder, args.curve_rounds)
        if not args.only_curve:
            results.update(machinery(folder, args))
            results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

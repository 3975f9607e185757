"""The associative memories on the engine, side by side with the code before the change.

Each measurement runs in turns in fresh processes, alternating between this tree and an
earlier revision (``--before``, default the commit before the memories moved onto the engine),
exported by ``git archive`` into an importable package layout, so both are timed on the same
machine in the same minutes (the machines are shared and noisy; a ratio taken side by side is
what counts):

1. ``hopfield.capacity``: 21 loads (0.02 .. 0.30) x 50 trials, N = 1000, Hebbian, asynchronous.
2. Synchronous batched recall, N = 2000, 256 cues: seconds per step (one memory, shared weights).
3. ``pc.train`` on its defaults (predictive coding, for the engine's other users).
4. The capacity curve of a user-written strict three-equation storage rule (examples/storage_3q.toml:
   10 loads x 20 trials at N = 500) through ``plasticity sweep`` on generated kernels, against the
   same sweep of the library's hebbian rule (batch storage, recall from the patterns); this tree only.

Run: ``python benchmarks/bench_memories.py [--before REV] [--rounds 3] [--trials 50] [--sweep-trials 20]
[--only capacity sync pc sweep] [--name memories]``; writes ``benchmarks/results/NAME.json`` and ``.md``. On a loaded
machine, fewer trials per load (``--trials``, ``--sweep-trials``) keep a run within minutes; the
trials used are in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BEFORE = "89a2e52"

CAPACITY = """
import json, time, numpy as np
from plasticity.networks.hopfield import capacity
capacity(n=1000, load=0.1, trials=4, seed=99)  # kernels compiled or loaded outside the timing
start = time.perf_counter()
curve = [float(capacity(n=1000, load=float(a), trials=TRIALS, seed=k).success.mean())
         for k, a in enumerate(np.linspace(0.02, 0.30, 21))]
print(json.dumps({"seconds": time.perf_counter() - start, "curve": curve}))
"""

SYNC = """
import json, time, numpy as np
from plasticity.networks.hopfield import HopfieldNetwork
rng = np.random.default_rng(0)
n, cues, steps = 2000, 256, 10
net = HopfieldNetwork(rng.choice([-1.0, 1.0], size=(int(0.1 * n), n)))
s = rng.choice([-1.0, 1.0], size=(cues, n))
net.retrieve(s, update="sync", max_sweeps=2)
def best(f, k=5):
    times = []
    for _ in range(k):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)
one = best(lambda: net.retrieve(s, update="sync", max_sweeps=1))
many = best(lambda: net.retrieve(s, update="sync", max_sweeps=steps + 1))
print(json.dumps({"seconds": (many - one) / steps}))
"""

PC = """
import json, time
from plasticity.networks.predictive_coding import train
train(epochs=1)  # kernels and step programs compiled or loaded outside the timing
start = time.perf_counter()
ds = train()
print(json.dumps({"seconds": time.perf_counter() - start, "test_accuracy": float(ds.test_accuracy[-1])}))
"""


def export(revision: str, into: Path) -> Path:
    """``revision`` as an importable package tree (plasticity/ with rules/, networks/, analysis/ inside)."""
    source = into / "src"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = into / "pkg"
    shutil.copytree(source / "plasticity", package / "plasticity")
    for folder in ("rules", "networks", "analysis"):
        shutil.copytree(source / folder, package / "plasticity" / folder)
    return package


def run(code: str, path: Path | None, trials: int = 50) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code).replace("TRIALS", str(trials))], capture_output=True, text=True, env=env,
                         cwd=str(path or ROOT))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def side_by_side(code: str, before: Path, rounds: int, trials: int = 50) -> dict:
    """Best of ``rounds`` alternating runs of this tree and the earlier one."""
    now, then = [], []
    for _ in range(rounds):
        now.append(run(code, None, trials))
        then.append(run(code, before, trials))
    best_now = min(now, key=lambda r: r["seconds"])
    best_then = min(then, key=lambda r: r["seconds"])
    return {"now": best_now, "before": best_then, "speedup": best_then["seconds"] / best_now["seconds"],
            "now_s": [r["seconds"] for r in now], "before_s": [r["seconds"] for r in then]}


def sweep_time(experiment: str, overrides: list[str], folder: Path) -> float:
    store = folder / f"{len(list(folder.iterdir()))}.zarr"
    command = [sys.executable, "-m", "plasticity.cli", "sweep", experiment, "-o", str(store), "-q"]
    for override in overrides:
        command += ["--set", override]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=str(ROOT))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=50, help="trials per load of the capacity curve")
    parser.add_argument("--sweep-trials", type=int, default=20, help="trials per load of the strict 3Q sweep")
    parser.add_argument("--name", default="memories", help="results file name (without extension)")
    parser.add_argument("--only", nargs="+", default=["capacity", "sync", "pc", "sweep"], choices=["capacity", "sync", "pc", "sweep"])
    args = parser.parse_args()
    results: dict = {"before": args.before, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cores": os.cpu_count(),
                     "load_average_at_start": os.getloadavg()[0], "rounds": args.rounds, "capacity_trials": args.trials}
    with tempfile.TemporaryDirectory() as folder:
        before = export(args.before, Path(folder))
        if "capacity" in args.only:
            results["capacity_curve"] = side_by_side(CAPACITY, before, args.rounds, args.trials)
        if "sync" in args.only:
            results["sync_recall_step"] = side_by_side(SYNC, before, args.rounds)
        if "pc" in args.only:
            results["pc_train"] = side_by_side(PC, before, args.rounds)
        if "sweep" in args.only:
            stores = Path(folder) / "stores"
            stores.mkdir()
            example = str(ROOT / "examples" / "storage_3q.toml")
            trials = f"params.trials={args.sweep_trials}"
            sweep_time(example, ["params.trials=2", "sweep.load=[0.1]"], stores)  # compile the rule's kernels once
            strict = min(sweep_time(example, [trials], stores) for _ in range(args.rounds))
            hebbian = min(sweep_time(example, [trials, "params.rule='hebbian'"], stores) for _ in range(args.rounds))
            results["strict_3q_sweep"] = {"points": 10, "trials": args.sweep_trials, "n": 500, "strict_3q_s": strict,
                                          "hebbian_s": hebbian, "ratio": strict / hebbian}
    results["load_average_at_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    results["openmp_environment"] = {key: os.environ[key] for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
                                     if key in os.environ}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Associative memories on the engine, against {args.before} (best of {args.rounds}, alternating)", "",
             f"Load average {results['load_average_at_start']:.1f} at the start, {results['load_average_at_end']:.1f} at the end; "
             f"the capacity curve with {args.trials} trials per load.", "",
             "| measurement | now | before | before / now |", "|---|---|---|---|"]
    for key in ("capacity_curve", "sync_recall_step", "pc_train"):
        if key in results:
            item = results[key]
            lines.append(f"| {key} | {item['now']['seconds']:.4g} s | {item['before']['seconds']:.4g} s | {item['speedup']:.2f}x |")
    if "strict_3q_sweep" in results:
        item = results["strict_3q_sweep"]
        lines += ["", f"`plasticity sweep examples/storage_3q.toml` ({item['trials']} trials per load; strict 3Q rule, engine): "
                  f"{item['strict_3q_s']:.1f} s; the same sweep with rule = 'hebbian' (fast paths): {item['hebbian_s']:.1f} s "
                  f"({item['ratio']:.1f}x)."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

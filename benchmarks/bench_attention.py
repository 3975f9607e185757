"""Cost profiles of the sequence memories (issue 23): time, memory and an energy proxy per token.

For linear attention and DeltaNet (the fast-weight memories; the gated forms cost the same plus
a few operations per unit) and softmax attention, against sequence length, on the CPU, float32,
``--heads`` sequences of d_k = d_v = ``--dim`` side by side (a layer's heads):

* ``loop``: the plain recurrent torch loop, one matrix-vector product per token (the anchor for
  the recurrent forms; ``attention.scan`` on torch);
* ``chunked``: the chunked parallel torch form (:func:`plasticity.networks.attention.chunked`,
  chunk 64);
* ``numba``: the numba scan kernel (``attention.scan`` on numba);
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` (the anchor
  for softmax attention) and ``masked``: the project's causal softmax attention (one masked
  T x T score matrix), both up to the lengths whose T x T work fits the run's time.

Each (contender, length) runs in a fresh process, so its peak resident memory above the
process's baseline is its own. The energy proxy counts operations and bytes moved per token
from the same operation counting as ``rule.cost()`` (per synapse of the d_v x d_k state, the
rule's adds and multiplies, plus the read-out S q and for the delta rule S k; bytes: the state
read and written once per token in the recurrent form), and for softmax attention at position t,
4 t d operations and 8 t d bytes (the keys and values so far, float32) averaged over the
sequence. Targets (issue 23): chunked >= loop at 4k tokens and >= 5x at 64k; numba >= 2x loop.

Run: ``python benchmarks/bench_attention.py [--lengths 1024 4096 16384 65536] [--dim 64]
[--heads 4] [--threads 1]``; every contender runs on ``--threads`` threads (one by default:
on a shared machine, threads that wait for a busy core cost torch's small per-token products
10x); writes ``benchmarks/results/attention.json`` and ``.md``.
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
from plasticity.networks import attention as att
from plasticity.backends.runtime import fast_path
contender, memory, length, dim, heads, repeats, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
torch.set_num_threads(threads)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((heads, length, dim)).astype(np.float32) / np.sqrt(dim) for _ in range(3))
k /= np.linalg.norm(k, axis=-1, keepdims=True)
ones = np.ones((heads, length), np.float32)
delta = memory == "delta"
tq, tk, tv, ta = (torch.from_numpy(x) for x in (q, k, v, ones))
def make(q, k, v, ones, tq, tk, tv, ta):
    if contender == "numba":
        scan = fast_path("attention.scan", "numba")
        return lambda: scan(q, k, v, ones, ones, delta)
    if contender == "loop":
        scan = fast_path("attention.scan", "torch")
        return lambda: scan(tq, tk, tv, ta, ta, delta)
    if contender == "chunked":
        return lambda: att.chunked(tq, tk, tv, ta, ta, delta=delta, chunk=64)
    if contender == "sdpa":
        f = torch.nn.functional.scaled_dot_product_attention
        return lambda: f(tq[None], tk[None], tv[None], is_causal=True)
    return lambda: att.softmax_attention(tq, tk, tv, beta=dim ** -0.5)
short = slice(0, 128)  # a warm-up run compiles or loads kernels and initialises the libraries outside the measurement
with torch.no_grad():
    make(q[:, short], k[:, short], v[:, short], ones[:, short], tq[:, short], tk[:, short], tv[:, short], ta[:, short])()
run = make(q, k, v, ones, tq, tk, tv, ta)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
best = float("inf")
with torch.no_grad():
    for _ in range(repeats):
        start = time.perf_counter(); run(); best = min(best, time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"seconds": best, "peak_kib": peak}))
"""

CONTENDERS = [("loop", "linear"), ("chunked", "linear"), ("numba", "linear"),
              ("loop", "delta"), ("chunked", "delta"), ("numba", "delta"), ("sdpa", "softmax"), ("masked", "softmax")]
#: Longest sequence each softmax contender runs (its T x T work; the masked form also holds T x T scores).
SOFTMAX_LIMIT = {"sdpa": 16384, "masked": 4096}


def energy_proxy(memory: str, length: int, dim: int) -> dict[str, float]:
    """Operations and bytes moved per token (see the module docstring)."""
    if memory == "softmax":
        context = (length + 1) / 2  # mean number of keys read
        return {"ops": 4 * context * dim, "bytes": 8 * context * dim}
    from plasticity.networks.attention import RULES

    cost = RULES[memory].cost()
    synapses = dim * dim
    reads = 2 if memory == "delta" else 1  # S q, and S k for the delta rule: a multiply and an add per synapse
    ops = (cost.adds + cost.multiplies + 2 * reads) * synapses + cost.unit_operations * dim
    return {"ops": ops, "bytes": cost.bytes_per_synapse(4) * synapses}


def measure(contender: str, memory: str, length: int, dim: int, heads: int, threads: int) -> dict:
    repeats = 3 if length <= 4096 else 1
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", WORKER, contender, memory, str(length), str(dim), str(heads), str(repeats),
                          str(threads)], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(contender=contender, memory=memory, length=length, tokens_per_second=heads * length / row["seconds"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads of every contender")
    args = parser.parse_args()
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M")
    for length in args.lengths:
        for contender, memory in CONTENDERS:
            if length > SOFTMAX_LIMIT.get(contender, length):
                continue
            row = measure(contender, memory, length, args.dim, args.heads, args.threads)
            row.update(energy_proxy(memory, length, args.dim))
            rows.append(row)
            print(f"{length:>6} {contender:>8} {memory:>7}: {row['tokens_per_second']:.3g} tokens/s, "
                  f"peak +{row['peak_kib'] / 1024:.0f} MiB", flush=True)
    by = {(r["contender"], r["memory"], r["length"]): r for r in rows}
    ratios = []
    for length in args.lengths:
        for memory in ("linear", "delta"):
            loop = by[("loop", memory, length)]["seconds"]
            ratios.append({"length": length, "memory": memory,
                           "chunked_over_loop": loop / by[("chunked", memory, length)]["seconds"],
                           "numba_over_loop": loop / by[("numba", memory, length)]["seconds"]})
    crossover = None
    for length in args.lengths:
        sdpa = by.get(("sdpa", "softmax", length))
        if sdpa and by[("chunked", "delta", length)]["seconds"] < sdpa["seconds"]:
            crossover = length
            break
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "machine": platform.machine(), "processor": platform.processor(), "dim": args.dim,
            "heads": args.heads, "threads": args.threads, "python": platform.python_version(), "load": os.getloadavg()}
    (RESULTS / "attention.json").write_text(json.dumps({"meta": meta, "rows": rows, "ratios": ratios,
                                                        "crossover_chunked_delta_vs_sdpa": crossover}, indent=1))
    lines = [f"# Sequence memories: cost per token ({started}, d = {args.dim}, {args.heads} heads, float32, CPU, "
             f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f})", "",
             "| tokens | contender | memory | tokens/s | peak MiB | ops/token | bytes/token |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['length']} | {r['contender']} | {r['memory']} | {r['tokens_per_second']:.3g} | {r['peak_kib'] / 1024:.0f} | "
              f"{r['ops']:.3g} | {r['bytes']:.3g} |" for r in rows]
    lines += ["", "| tokens | memory | chunked / loop | numba / loop |", "|---|---|---|---|"]
    lines += [f"| {r['length']} | {r['memory']} | {r['chunked_over_loop']:.2f} | {r['numba_over_loop']:.2f} |" for r in ratios]
    lines += ["", f"Shortest measured length where chunked DeltaNet is faster than SDPA: {crossover}"]
    (RESULTS / "attention.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

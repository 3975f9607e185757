"""Torch backend benchmark: the Oja step against the numpy backend (CPU) and the device bandwidth (CUDA).

Measured side by side in one run (issue 4, DESIGN section 8), float32, trials = 1, in
synapse updates per second (N^2 / seconds per step):

1. CPU, N = 4096: one step of a default-order network ``inp -> out`` (``y = I``) with the
   built-in ``oja`` rule on the torch backend (``device="cpu"``; also with ``compile=True``,
   the update as one ``torch.compile`` pass), on the numpy backend and, for context, on the
   numba backend. Target: torch not slower than numpy. The compiled step also runs with the
   next drive not fused into the update (``unfused``: the update's pass, then the drive's product
   reading ``W`` again, as before the fused drive), side by side.
2. CUDA, N = 16384 (only where a CUDA device is present): the same torch step on the GPU
   against the device's memory bandwidth measured in the same run by a copy kernel
   (``dst.copy_(src)`` over an N x N float32 array, 8 bytes per element). The step is
   compared as ``8 N^2 bytes / step time`` (what a fused read+write pass over ``W`` must
   move) divided by the copy bandwidth, with the default settings (on CUDA the update is one
   ``torch.compile`` pass that also computes the next drive), unfused (the compiled update,
   then the drive's product) and eager (``compile=False``). Target >= 0.8x for the default.
   Without CUDA the figure is recorded as "not measured".

Every figure is the best of several repeats (other programs share the cores).

Usage: ``python benchmarks/bench_torch.py [--n 4096] [--gpu-n 16384] [--repeats 5] [--part cpu|cuda]``;
writes ``benchmarks/results/torch.json`` and ``benchmarks/results/torch.md``. ``--part`` measures one
section and keeps the other from the existing results file, so the CPU figure can come from the
2-core development machine and the CUDA figure from a GPU machine; each section records the
machine, date and torch version it was measured with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import plasticity as pl
import plasticity.backends.torch_backend as torch_backend
from plasticity.backends import available_backends
from plasticity.backends.torch_backend import COMPILE_ENV
from plasticity.provenance import now_iso
from plasticity.rules import get_rule

RESULTS = Path(__file__).resolve().parent / "results"
NOT_MEASURED = "not measured"
#: The default CUDA step's target, as a fraction of the device's copy bandwidth.
CUDA_TARGET = 0.8


def oja_engine(n: int, backend: str, device: str | None = None, compile: bool | None = False, fused_drive: bool = True):
    """The Oja network's engine; ``compile=None`` leaves the choice to the backend's default;
    ``fused_drive=False``: a torch engine whose compiled update does not compute the next drive."""
    if not fused_drive:
        with _without_fused_drive():
            return oja_engine(n, backend, device, compile)
    if compile is None:
        os.environ.pop(COMPILE_ENV, None)
    else:
        os.environ[COMPILE_ENV] = "1" if compile else "0"
    inp = pl.Population(n, init={"x": 0.0}, name="inp")
    out = pl.Population(n, ["y = I"], name="out")
    rule = get_rule("oja").with_params(eta=1e-6)
    network = pl.Network([inp, out], [pl.Projection(inp, out, rule, name="ff", init={"w": 0.01})])
    return pl.Simulation(network, trials=1, backend=backend, seed=0, dtype="float32", device=device).engine


@contextlib.contextmanager
def _without_fused_drive():
    """Torch engines built inside see no projection whose update may compute its next drive."""
    fusion_mode = torch_backend.fusion_mode
    torch_backend.fusion_mode = lambda network, name: None
    try:
        yield
    finally:
        torch_backend.fusion_mode = fusion_mode


def best_seconds(function, repeats: int, inner: int, synchronize=lambda: None) -> tuple[float, list[float]]:
    """Best and all per-call times over ``repeats`` timings of ``inner`` calls."""
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        for _ in range(inner):
            function()
        synchronize()
        times.append((time.perf_counter() - start) / inner)
    return min(times), times


def machine_record() -> dict:
    """Where and when a section was measured."""
    return {
        "date": now_iso(),
        "machine": f"{platform.machine()} {platform.platform()}",
        "cores": os.cpu_count(),
        "torch": torch.__version__,
    }


def measure_cpu(n: int, repeats: int) -> dict:
    x = np.random.default_rng(0).normal(size=(1, n)).astype(np.float32)
    inputs, plastic = {"inp.x": x}, frozenset({"ff"})
    row: dict = {**machine_record(), "n": n, "synapses": n * n, "torch_threads": torch.get_num_threads()}
    backends = ["torch", "torch_compiled", "torch_compiled_unfused", "numpy"] + (["numba"] if "numba" in available_backends() else [])
    engines = {
        name: oja_engine(n, name.split("_")[0], "cpu" if name.startswith("torch") else None,
                         compile=name.startswith("torch_compiled"), fused_drive=name != "torch_compiled_unfused")
        for name in backends
    }
    for engine in engines.values():
        for step in range(2):  # warm up (compiles numba and the torch.compile kernel)
            engine.step(float(step + 1), inputs, plastic, inputs)
    times: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(repeats):  # interleaved, so every backend sees the same load
        for name, engine in engines.items():
            times[name] += best_seconds(lambda: engine.step(1.0, inputs, plastic, inputs), 1, 2)[1]
    for name in backends:
        row[f"{name}_updates_per_s"] = n * n / min(times[name])
        row[f"{name}_times_s"] = times[name]
    row["torch_vs_numpy"] = row["torch_updates_per_s"] / row["numpy_updates_per_s"]
    row["torch_compiled_vs_numpy"] = row["torch_compiled_updates_per_s"] / row["numpy_updates_per_s"]
    # the fused drive's gain, also timed in rounds of the two compiled steps alone, with nothing
    # between them (OpenBLAS's threads, idle after the numpy step, spun for 0.1 s and slowed
    # the steps timed after it until the package shortened their spin: benchmarks/README.md)
    pair = {name: [] for name in ("torch_compiled", "torch_compiled_unfused")}
    for _ in range(repeats):
        for name, times_of_name in pair.items():
            times_of_name += best_seconds(lambda: engines[name].step(1.0, inputs, plastic, inputs), 1, 5)[1]
    for name, times_of_name in pair.items():
        row[f"{name}_pair_times_s"] = times_of_name
    row["torch_compiled_vs_unfused"] = float(np.median(pair["torch_compiled_unfused"]) / np.median(pair["torch_compiled"]))
    row["torch_compiled_vs_unfused_best"] = min(pair["torch_compiled_unfused"]) / min(pair["torch_compiled"])
    if "numba" in backends:
        row["torch_vs_numba"] = row["torch_updates_per_s"] / row["numba_updates_per_s"]
    return row


def measure_cuda(n: int, repeats: int) -> dict:
    if not torch.cuda.is_available():
        return {
            "n": n, "device": NOT_MEASURED, "oja_default_vs_copy": NOT_MEASURED, "oja_eager_vs_copy": NOT_MEASURED,
            "reason": "no CUDA device on this machine",
        }
    device = torch.device("cuda", 0)
    row: dict = {**machine_record(), "n": n, "synapses": n * n, "device": torch.cuda.get_device_name(device), "fused_drive": True}
    seconds, row["copy_times_s"] = _copy_seconds(n, device, repeats)
    row["copy_GBps"] = 8 * n * n / seconds / 1e9
    for label, compile, fused_drive in (("oja_default", None, True), ("oja_unfused", None, False), ("oja_eager", False, True)):
        seconds, row[f"{label}_times_s"] = _step_seconds(n, compile, fused_drive, repeats)
        row[f"{label}_updates_per_s"] = n * n / seconds
        row[f"{label}_effective_GBps"] = 8 * n * n / seconds / 1e9
        row[f"{label}_vs_copy"] = row[f"{label}_effective_GBps"] / row["copy_GBps"]
        torch.cuda.empty_cache()
    row["target_vs_copy"] = CUDA_TARGET
    row["target_met"] = row["oja_default_vs_copy"] >= CUDA_TARGET
    return row


def _copy_seconds(n: int, device: torch.device, repeats: int) -> tuple[float, list[float]]:
    """A device copy kernel over N x N float32 (reads and writes 8 bytes per element)."""
    source = torch.ones(n, n, device=device)
    target = torch.empty_like(source)
    return best_seconds(lambda: target.copy_(source), repeats, 10, torch.cuda.synchronize)


def _step_seconds(n: int, compile: bool | None, fused_drive: bool, repeats: int) -> tuple[float, list[float]]:
    """The torch Oja step on the first CUDA device."""
    engine = oja_engine(n, "torch", "cuda", compile=compile, fused_drive=fused_drive)
    x = np.random.default_rng(0).normal(size=(1, n)).astype(np.float32)
    inputs, plastic = {"inp.x": x}, frozenset({"ff"})
    for step in range(3):
        engine.step(float(step + 1), inputs, plastic, inputs)
    return best_seconds(lambda: engine.step(1.0, inputs, plastic, inputs), repeats, 10, torch.cuda.synchronize)


def markdown(report: dict) -> str:
    cpu, gpu = report["cpu"], report["cuda"]
    lines = [
        "# Torch backend benchmark: Oja projection, float32, trials = 1",
        "",
        "Best of the repeats; synapse updates per second.",
        "",
        "## CPU: torch step against the numpy backend",
        "",
        f"{cpu['date']} on {cpu['machine']}, {cpu['cores']} cores, torch {cpu['torch']} ({cpu['torch_threads']} threads).",
        "",
        "| N | torch (cpu) | torch, compile=True | compiled, drive not fused | numpy backend | numba backend "
        "| torch / numpy | torch compiled / numpy | compiled / not fused | torch / numba |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {cpu['n']} | {cpu['torch_updates_per_s']:.3g} | {cpu['torch_compiled_updates_per_s']:.3g} | "
        f"{cpu['torch_compiled_unfused_updates_per_s']:.3g} | "
        f"{cpu['numpy_updates_per_s']:.3g} | {cpu.get('numba_updates_per_s', float('nan')):.3g} | "
        f"{cpu['torch_vs_numpy']:.2f} | {cpu['torch_compiled_vs_numpy']:.2f} | {cpu['torch_compiled_vs_unfused']:.2f} (best {cpu['torch_compiled_vs_unfused_best']:.2f}) | "
        f"{cpu.get('torch_vs_numba', float('nan')):.2f} |",
        "",
        "Target: torch / numpy >= 1 (default settings, no compilation). Compiled / not fused: medians "
        "(and best) of the two compiled steps timed in rounds of their own.",
        "",
        "## CUDA: torch step against the device's copy bandwidth",
        "",
    ]
    if gpu.get("device") == NOT_MEASURED:
        lines.append(f"N = {gpu['n']}: **{NOT_MEASURED}** ({gpu['reason']}). Target: >= {CUDA_TARGET}x the copy bandwidth.")
    else:
        lines += [
            f"{gpu['date']} on {gpu['machine']}, {gpu['cores']} cores, torch {gpu['torch']}.",
            "",
            "| N | device | copy (GB/s) | step | updates/s | 8 bytes per synapse (GB/s) | step / copy |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {gpu['n']} | {gpu['device']} | {gpu['copy_GBps']:.0f} | {label} | {gpu[f'{key}_updates_per_s']:.3g} | "
                f"{gpu[f'{key}_effective_GBps']:.0f} | {gpu[f'{key}_vs_copy']:.2f} |"
                for key, label in (("oja_default", "default (compiled" + (", next drive fused)" if gpu.get("fused_drive") else ")")),
                                   ("oja_unfused", "compiled, drive not fused"), ("oja_eager", "eager, compile=False"))
                if f"{key}_updates_per_s" in gpu  # measurements from before the fused drive have no unfused row
            ),
            "",
            f"Target: default step / copy >= {CUDA_TARGET}: {'met' if gpu['target_met'] else 'NOT met'}.",
        ]
    spread = {key: max(cpu[key]) / min(cpu[key]) - 1 for key in cpu if key.endswith("_times_s")}
    lines += ["", "Spread of the CPU repeats (slowest / fastest - 1): "
              + ", ".join(f"{key[:-8]} {value:.0%}" for key, value in spread.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="N for the CPU comparison")
    parser.add_argument("--gpu-n", type=int, default=16384, help="N for the CUDA comparison")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--part", choices=("all", "cpu", "cuda"), default="all",
        help="measure one section only and keep the other from the existing results file",
    )
    args = parser.parse_args()
    previous = json.loads((RESULTS / "torch.json").read_text()) if (RESULTS / "torch.json").exists() else {}
    if args.part != "all" and {"cpu", "cuda"} - {args.part} - previous.keys():
        parser.error(f"--part {args.part} keeps the other section from {RESULTS / 'torch.json'}, which has none")
    report = {
        "cpu": measure_cpu(args.n, args.repeats) if args.part in ("all", "cpu") else previous["cpu"],
        "cuda": measure_cuda(args.gpu_n, args.repeats) if args.part in ("all", "cuda") else previous["cuda"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "torch.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "torch.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
